"""`GET /audit.csv`: token-protected CSV export of the audit log, filtered by location and kind."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.logs import SECRETS, JsonFormatter
from tests.harness import BotHarness

TOKEN = "audit-export-token-0123456789"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[BotHarness]:
    async with BotHarness.start(tmp_path, audit_export_token=TOKEN) as h:
        audit = h.services.audit
        await audit.record(kind="tagging", action="post.create", outcome="ok", actor="ou_a", chat_id="oc_1",
                           location_id="loc_a", detail={"post_id": "p1", "tags": ["t1", "t2"]})
        await audit.record(kind="tagging", action="post.tag", outcome="error", chat_id="oc_1", location_id="loc_b",
                           detail={"post_id": "p2", "error": "refused, \"quoted\"\nnew line"})
        await audit.record(kind="command", action="help", outcome="ok", actor="ou_a", chat_id="oc_1")
        yield h


async def get(h: BotHarness, query: str = "", headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    async with h.session.get(h.url("/audit.csv") + query, headers=headers or {}) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


def rows(body: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body)))


async def test_bearer_token_exports_everything(bot: BotHarness) -> None:
    status, body, headers = await get(bot, headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv") and "charset=utf-8" in headers["Content-Type"]
    assert "attachment" in headers["Content-Disposition"] and headers["Cache-Control"] == "no-store"
    got = rows(body)
    assert [(r["kind"], r["action"], r["outcome"]) for r in got] == [
        ("tagging", "post.create", "ok"), ("tagging", "post.tag", "error"), ("command", "help", "ok")]
    assert got[1]["detail"] == '{"post_id": "p2", "error": "refused, \\"quoted\\"\\nnew line"}'
    assert got[0]["actor"] == "ou_a" and got[0]["location_id"] == "loc_a"


async def test_query_token_and_filters(bot: BotHarness) -> None:
    status, body, _ = await get(bot, f"?token={TOKEN}&kind=tagging&location=loc_b")
    assert status == 200
    [only] = rows(body)
    assert (only["action"], only["location_id"]) == ("post.tag", "loc_b")
    status, body, _ = await get(bot, f"?token={TOKEN}&kind=tagging")
    assert [r["action"] for r in rows(body)] == ["post.create", "post.tag"]
    status, body, _ = await get(bot, f"?token={TOKEN}&location=nowhere")
    assert status == 200 and rows(body) == [] and body.startswith("id,at,actor")


@pytest.mark.parametrize("headers,query", [
    ({}, ""),
    ({"Authorization": "Bearer wrong-token"}, ""),
    ({"Authorization": f"Basic {TOKEN}"}, ""),
    ({"Authorization": f"Bearer {TOKEN[:-1]}"}, ""),
    ({}, "?token="),
    ({}, f"?token={TOKEN}x"),
])
async def test_missing_or_wrong_token_is_401(bot: BotHarness, headers: dict[str, str], query: str) -> None:
    status, body, resp_headers = await get(bot, query, headers)
    assert status == 401
    assert resp_headers["WWW-Authenticate"].startswith("Bearer")
    assert "post.create" not in body


async def test_no_token_configured_means_no_endpoint(tmp_path: Path) -> None:
    async with BotHarness.start(tmp_path) as h:
        status, _, _ = await get(h, f"?token={TOKEN}", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 404


async def test_the_token_never_reaches_the_logs(bot: BotHarness) -> None:
    """`?token=` shows up in the access log's request line: the production pipeline scrubs it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(SECRETS)  # what setup_logging installs on the root handler
    handler.setFormatter(JsonFormatter(SECRETS))
    access = logging.getLogger("aiohttp.access")
    root = logging.getLogger()
    old_levels = access.level, root.level
    root.addHandler(handler)
    access.setLevel(logging.INFO)  # worst case: access logging turned up
    root.setLevel(logging.INFO)
    try:
        for query in (f"?token={TOKEN}", "?token=wrong"):
            await get(bot, query)
        await get(bot, headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        root.removeHandler(handler)
        access.setLevel(old_levels[0])
        root.setLevel(old_levels[1])
    logged = out.getvalue()
    assert "/audit.csv?token=***" in logged
    assert TOKEN not in logged


async def test_overlong_filters_are_rejected(bot: BotHarness) -> None:
    status, _, _ = await get(bot, f"?token={TOKEN}&kind={'x' * 500}")
    assert status == 400


async def test_only_get(bot: BotHarness) -> None:
    async with bot.session.post(bot.url("/audit.csv"), headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 405
    assert isinstance(bot.session, aiohttp.ClientSession)

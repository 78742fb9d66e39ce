"""`POST /lark/events` against the receiver checklist (shared/reference/lark.md §2, §3, §15).

Every test runs the real server on a loopback port (tests/harness.py) against the fake Lark API and
asserts what reached the fake (replies, sends) and what was or was not stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.clock import FakeClock
from bot.context import Context
from bot.lark.crypto import lark_encrypt, lark_signature
from bot.registry import Router
from bot.server import default_routers
from bot.store.dedupe import DedupeStore
from cards.i18n import T
from cards.kit import Card
from tests.cardcheck import assert_fake_cards_valid, iter_elements, texts
from tests.fakes.lark_api import FakeLark
from tests.harness import APP_ID, APP_SECRET, ENCRYPT_KEY, BotHarness

SIG_HEADERS = ("X-Lark-Request-Timestamp", "X-Lark-Request-Nonce", "X-Lark-Signature")
JSON_CT = {"Content-Type": "application/json"}


# -- helpers ------------------------------------------------------------------------------------------------


def signed(body: bytes, *, ts: int | None = None, key: str = ENCRYPT_KEY) -> dict[str, str]:
    """Headers Lark would send with `body` (any bytes, not only a valid envelope)."""
    stamp = str(int(__import__("time").time()) if ts is None else ts)
    nonce = secrets.token_hex(8)
    return {**JSON_CT, "X-Lark-Request-Timestamp": stamp, "X-Lark-Request-Nonce": nonce,
            "X-Lark-Signature": lark_signature(stamp, nonce, key, body)}


async def processed_keys(h: BotHarness) -> int:
    row = await h.services.db.fetchone("SELECT COUNT(*) AS n FROM dedupe_log")
    assert row is not None
    return int(row["n"])


async def audit_rows(h: BotHarness, **where: str) -> list[Any]:
    clause = " AND ".join(f"{k} = ?" for k in where) or "1=1"
    return await h.services.db.fetchall(f"SELECT * FROM audit WHERE {clause} ORDER BY id", tuple(where.values()))


async def metrics(h: BotHarness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with h.session.get(h.url("/metrics")) as resp:
        assert resp.status == 200
        text = await resp.text()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def counter(snapshot: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str, /,
            **labels: str) -> float:
    want = tuple(sorted(labels.items()))
    return sum(v for (n, lab), v in snapshot.items()
               if n == f"{metric}_total" and all(item in lab for item in want))


async def healthz(h: BotHarness) -> int:
    async with h.session.get(h.url("/healthz")) as resp:
        return resp.status


def card_buttons(card: Card) -> list[dict[str, Any]]:
    return [el for el in iter_elements(card["body"]["elements"]) if el.get("tag") == "button"]


async def settled(h: BotHarness) -> list[dict[str, Any]]:
    """Wait for background work, validate every card the fake got, return the delivered messages."""
    await h.settle()
    assert_fake_cards_valid(h.lark)
    return h.lark.sent_messages()


def help_reply_ok(msg: dict[str, Any], message_id: str) -> None:
    assert msg["kind"] == "reply" and msg["reply_to"] == message_id
    assert msg["content"]["header"]["title"]["content"] == "Help"
    assert "/help" in texts(msg["content"])


# -- checklist 1, 2, 3, 4, 5: signature and timestamp -----------------------------------------------------


async def test_valid_signed_encrypted_delivery_gets_exactly_one_reply(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_p2p")
    body, headers = bot.events.sign_and_encode(env)
    assert set(json.loads(body)) == {"encrypt"}  # really encrypted
    assert await bot.post_raw(body, headers) == (200, {})
    [msg] = await settled(bot)
    help_reply_ok(msg, env["event"]["message"]["message_id"])
    assert await processed_keys(bot) == 2  # event_id and message_id


@pytest.mark.parametrize("encrypt", [True, False], ids=["encrypted", "signed-plaintext"])
async def test_one_flipped_body_byte_is_401_and_nothing_happens(tmp_path: Path, encrypt: bool) -> None:
    async with BotHarness.start(tmp_path) as h:
        env = h.events.message("/help", chat_id="oc_p2p")
        body, headers = h.events.sign_and_encode(env, encrypt=encrypt)
        rng = random.Random(7)
        positions = {0, 1, len(body) // 2, len(body) - 2, len(body) - 1, *rng.sample(range(len(body)), 10)}
        for pos in sorted(positions):
            bad = bytearray(body)
            bad[pos] ^= 0x01
            status, answer = await h.post_raw(bytes(bad), headers)
            assert status == 401, f"byte {pos} flipped: {status} {answer}"
        assert await settled(h) == []
        assert await processed_keys(h) == 0
        assert await audit_rows(h) == []
        m = await metrics(h)
        assert counter(m, "lark_events_rejected", reason="bad signature") == len(positions)
        assert counter(m, "lark_events_received") == 0


@pytest.mark.parametrize("missing", [*SIG_HEADERS, "all"])
async def test_missing_signature_header_is_401(bot: BotHarness, missing: str) -> None:
    body, headers = bot.events.sign_and_encode(bot.events.message("/help", chat_id="oc_p2p"))
    for name in SIG_HEADERS:
        if missing in (name, "all"):
            del headers[name]
    assert (await bot.post_raw(body, headers))[0] == 401
    assert await settled(bot) == []
    assert await processed_keys(bot) == 0


@pytest.mark.parametrize("missing", SIG_HEADERS)
async def test_empty_signature_header_is_401(bot: BotHarness, missing: str) -> None:
    body, headers = bot.events.sign_and_encode(bot.events.message("/help", chat_id="oc_p2p"))
    headers[missing] = ""
    assert (await bot.post_raw(body, headers))[0] == 401
    assert await settled(bot) == []


async def test_timestamp_window_uses_the_injected_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    async with BotHarness.start(tmp_path, clock=clock) as h:
        now = int(clock.time())
        window = h.services.settings.lark_timestamp_window
        assert window == 300
        for ts in (now - window - 1, now - 3600, now + window + 1, now + 86400, 0):
            status, _ = await h.deliver(h.events.message("/help", chat_id="oc_p2p"), timestamp=ts)
            assert status == 401, ts
        assert await settled(h) == []
        assert await processed_keys(h) == 0
        m = await metrics(h)
        assert counter(m, "lark_events_rejected", reason="stale or future timestamp") == 5
        # Inside the window on both sides: accepted.
        for ts in (now - window + 5, now + window - 5):
            assert (await h.deliver(h.events.message("/help", chat_id="oc_p2p"), timestamp=ts))[0] == 200
        assert len(await settled(h)) == 2
        # The clock moves on: a delivery signed "now" by Lark's (real) clock is stale for a pinned clock.
        clock.advance(window + 10)
        assert (await h.deliver(h.events.message("/help", chat_id="oc_p2p"), timestamp=now))[0] == 401


async def test_lower_case_header_names_are_accepted(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_p2p")
    body, headers = bot.events.sign_and_encode(env)
    lower = {k.lower(): v for k, v in headers.items()}
    assert "x-lark-signature" in lower
    assert (await bot.post_raw(body, lower)) == (200, {})
    [msg] = await settled(bot)
    help_reply_ok(msg, env["event"]["message"]["message_id"])


async def test_wrong_verification_token_is_401(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_p2p")
    env["header"]["token"] = "not-the-token"
    assert (await bot.deliver(env))[0] == 401
    del env["header"]["token"]
    assert (await bot.deliver(env))[0] == 401
    assert await settled(bot) == []
    assert await processed_keys(bot) == 0


# -- checklist 10: url_verification ------------------------------------------------------------------------


async def test_url_verification_plain_and_encrypted(bot: BotHarness) -> None:
    env = bot.events.url_verification("ch-plain")
    # Plain, unsigned (the one exemption from the signature check).
    assert await bot.post_raw(json.dumps(env).encode(), JSON_CT) == (200, {"challenge": "ch-plain"})
    # Plain, signed.
    assert await bot.deliver(env, encrypt=False) == (200, {"challenge": "ch-plain"})
    # Encrypted and signed, as Lark sends it once the Encrypt Key is on.
    env = bot.events.url_verification("ch-enc")
    assert await bot.deliver(env) == (200, {"challenge": "ch-enc"})
    # Encrypted, unsigned.
    body = json.dumps({"encrypt": lark_encrypt(json.dumps(env), ENCRYPT_KEY)}).encode()
    assert await bot.post_raw(body, JSON_CT) == (200, {"challenge": "ch-enc"})


async def test_url_verification_with_wrong_token_is_401(bot: BotHarness) -> None:
    bad = bot.events.url_verification("ch", token="wrong")
    assert (await bot.post_raw(json.dumps(bad).encode(), JSON_CT))[0] == 401
    assert (await bot.deliver(bad))[0] == 401
    status, answer = await bot.deliver(bot.events.url_verification("ch", token=""))
    assert status == 401 and "ch" not in json.dumps(answer)


# -- no encrypt key: the verification token is the only check ----------------------------------------------


async def test_without_encrypt_key_plaintext_is_checked_by_token(tmp_path: Path) -> None:
    async with BotHarness.start(tmp_path, encrypt=False) as h:
        assert h.services.settings.lark_encrypt_key is None
        env = h.events.message("/help", chat_id="oc_p2p")
        body, headers = h.events.sign_and_encode(env)
        assert json.loads(body) == env and "X-Lark-Signature" not in headers
        assert await h.post_raw(body, headers) == (200, {})
        [msg] = await settled(h)
        help_reply_ok(msg, env["event"]["message"]["message_id"])

        wrong = h.events.message("/help", chat_id="oc_p2p")
        wrong["header"]["token"] = "wrong"
        assert (await h.deliver(wrong))[0] == 401

        assert await h.deliver(h.events.url_verification("c1")) == (200, {"challenge": "c1"})
        assert (await h.deliver(h.events.url_verification("c1", token="x")))[0] == 401

        encrypted = json.dumps({"encrypt": lark_encrypt(json.dumps(h.events.message("/help", chat_id="oc_p2p")),
                                                        "some-key")}).encode()
        assert (await h.post_raw(encrypted, JSON_CT))[0] == 400
        assert len(await settled(h)) == 1
        assert await processed_keys(h) == 2


# -- malformed deliveries ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"", b"{", b"not json", b'{"encrypt": "abc"', b"\xff\xfe\x00", b'{"a": 1}{"b": 2}', b"[" * 100_000,
    b'{"a":' * 50_000,
], ids=["empty", "brace", "text", "truncated", "binary", "two-docs", "deep-array", "deep-object"])
async def test_malformed_json_is_400(bot: BotHarness, body: bytes) -> None:
    assert (await bot.post_raw(body, signed(body)))[0] == 400
    assert (await bot.post_raw(body, JSON_CT))[0] in (400, 401)


@pytest.mark.parametrize("value", [
    "!!!not base64!!!", "", "QUJD", "A" * 64, lark_encrypt("hello", "another-key"),
    lark_encrypt("not json", ENCRYPT_KEY),
    lark_encrypt('["a list"]', ENCRYPT_KEY), lark_encrypt("[" * 5000, ENCRYPT_KEY), 12345, None, ["x"], "中文",
], ids=["junk", "empty", "short", "no-padding", "other-key", "not-json", "list", "deep", "int", "null", "array",
        "non-ascii"])
async def test_undecryptable_encrypt_is_400(bot: BotHarness, value: Any) -> None:
    body = json.dumps({"encrypt": value}).encode()
    status, _ = await bot.post_raw(body, signed(body))
    assert status == 400
    assert await settled(bot) == []
    assert await processed_keys(bot) == 0


async def test_json_array_body_is_400(bot: BotHarness) -> None:
    for body in (b"[]", b'[{"schema": "2.0"}]', b'"string"', b"42", b"null", b"true"):
        assert (await bot.post_raw(body, signed(body)))[0] == 400, body


async def test_body_over_one_mib_is_413(bot: BotHarness) -> None:
    cap = bot.services.settings.lark_max_body_bytes
    assert cap == 1024 * 1024
    big = b'{"encrypt": "' + b"A" * cap + b'"}'
    assert (await bot.post_raw(big, signed(big)))[0] == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the cap applies while reading
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    async with bot.session.post(bot.url("/lark/events"), data=chunks(), headers=signed(big)) as resp:
        assert resp.status == 413
    # Exactly at the cap is still read (and then judged on its merits).
    fits = b'{"encrypt": "' + b"A" * (cap - 15) + b'"}'
    assert len(fits) <= cap
    assert (await bot.post_raw(fits, signed(fits)))[0] == 400
    m = await metrics(bot)
    assert counter(m, "lark_events_rejected", reason="body too large") == 2


async def test_unknown_event_type_is_200_and_ignored(bot: BotHarness) -> None:
    before = await metrics(bot)
    for etype in ("im.message.reaction.created_v1", "some.future.event_v9", ""):
        env = bot.events.raw(etype, {"chat_id": "oc_1", "anything": [1, 2, 3]})
        assert await bot.deliver(env) == (200, {})
    assert await settled(bot) == []
    assert bot.lark.calls == []
    after = await metrics(bot)
    assert counter(after, "lark_events_received", type="ignored") - counter(before, "lark_events_received",
                                                                            type="ignored") == 3


async def test_legacy_schema_one_event_is_acknowledged_and_ignored(bot: BotHarness) -> None:
    legacy = {"uuid": "u1", "token": bot.events.verification_token, "ts": "1", "type": "event_callback",
              "event": {"type": "message"}}
    assert await bot.deliver(legacy) == (200, {})
    legacy["token"] = "wrong"
    assert (await bot.deliver(legacy))[0] == 401
    assert await settled(bot) == []


# -- never a 500: a small fuzz loop -------------------------------------------------------------------------


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.randint(-(2**70), 2**70)
    if choice == 2:
        return rng.random() * 1e308
    if choice == 3:
        return rng.choice([True, False])
    if choice == 4:
        return "".join(rng.choice("ab/@_ \n中\x00\"{}") for _ in range(rng.randrange(12)))
    if choice == 5:
        return rng.choice(["", "/help", "om_x", "oc_x", "card.action.trigger", "im.message.receive_v1"])
    if choice == 6:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["k", "v", "message", "text", "content", "value", "tag"]): _random_value(rng, depth + 1)
            for _ in range(rng.randrange(4))}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate_envelope(rng: random.Random, env: Any) -> Any:
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(env) if p]
        if not paths:
            return _random_value(rng)
        deep = [p for p in paths if p[0] == "event" and len(p) > 1]
        if deep and rng.random() < 0.7:  # mostly keep the envelope valid, to reach the handlers
            paths = deep
        path = rng.choice(paths)
        parent = env
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and rng.random() < 0.3:
            del parent[path[-1]]
        else:
            parent[path[-1]] = _random_value(rng)
    return env


async def test_fuzzed_deliveries_never_get_a_500(bot: BotHarness) -> None:
    rng = random.Random(20260101)
    ev = bot.events
    bases = [
        lambda: ev.message("/help", chat_id="oc_f", mention_bot=True, chat_type="group"),
        lambda: ev.post_message([[{"tag": "text", "text": "/audit"}]], chat_id="oc_f"),
        lambda: ev.card_action({"k": "audit.page", "v": 1, "before": 5}, chat_id="oc_f", message_id="om_f"),
        lambda: ev.card_action({"k": "cmd", "v": 1, "command": "help"}, chat_id="oc_f", message_id="om_f"),
        lambda: ev.bot_added("oc_f"), lambda: ev.bot_deleted("oc_f"), lambda: ev.p2p_entered("oc_f"),
        lambda: ev.menu("help"), lambda: ev.url_verification(),
        lambda: ev.raw("unknown.type_v1", {"x": 1}),
    ]
    statuses: dict[int, int] = {}
    for i in range(200):
        kind = i % 4
        if kind == 0:  # a valid envelope with wrong types or missing keys, signed and (mostly) encrypted
            env = _mutate_envelope(rng, bases[rng.randrange(len(bases))]())
            if not isinstance(env, dict):
                raw = json.dumps(env).encode()
                body, headers = raw, signed(raw)
            else:
                body, headers = ev.sign_and_encode(env, encrypt=rng.random() < 0.8)
        elif kind == 1:  # byte-level mutation of a valid body, re-signed so it gets past the signature
            body, _ = ev.sign_and_encode(bases[rng.randrange(len(bases))](), encrypt=rng.random() < 0.5)
            mutable = bytearray(body)
            for _ in range(rng.randint(1, 4)):
                op = rng.randrange(3)
                pos = rng.randrange(len(mutable))
                if op == 0:
                    mutable[pos] = rng.randrange(256)
                elif op == 1:
                    del mutable[pos]
                else:
                    mutable[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            body = bytes(mutable)
            headers = signed(body)
        elif kind == 2:  # a valid body with garbage signature headers
            body, headers = ev.sign_and_encode(bases[rng.randrange(len(bases))]())
            name = rng.choice(SIG_HEADERS)
            headers[name] = rng.choice(["", "nan", "inf", "-1", "1e400", "x" * 300, "０１２", "🙂",
                                        "99999999999999999999"])
        else:  # random bytes, random or no headers
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
            headers = signed(body) if rng.random() < 0.5 else {}
        try:
            status, _ = await bot.post_raw(body, headers)
        except UnicodeEncodeError:  # the client cannot send this header value; nothing to test
            continue
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, f"case {i} ({kind}): HTTP {status} for body {body[:200]!r} headers {headers}"
    assert sum(statuses.values()) >= 190
    assert statuses.get(200, 0) >= 40 and statuses.get(400, 0) >= 40 and statuses.get(401, 0) >= 40, statuses
    assert await healthz(bot) == 200
    await bot.settle()
    # The server still does its job afterwards.
    bot.lark.calls.clear()
    before = len(bot.lark.sent_messages())
    env = ev.message("/help", chat_id="oc_after")
    assert await bot.deliver(env) == (200, {})
    await bot.settle()
    after = bot.lark.sent_messages()[before:]
    assert [m["reply_to"] for m in after] == [env["event"]["message"]["message_id"]]


@pytest.mark.parametrize("event", [
    {"message": "a string"}, {"message": ["a", "list"]}, {"message": 1}, {"message": {"message_id": ["x"]}},
    {"message": {"message_id": {"a": 1}}}, {"sender": "x", "message": None},
], ids=["str", "list", "int", "list-id", "dict-id", "none"])
async def test_message_event_with_wrong_shapes_is_not_a_500(bot: BotHarness, event: dict[str, Any]) -> None:
    status, _ = await bot.deliver(bot.events.raw("im.message.receive_v1", event))
    assert status < 500
    assert await settled(bot) == []


# -- checklist 6, 7, 8: dedupe -----------------------------------------------------------------------------


async def test_same_event_id_twice_gets_one_reply(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_p2p")
    assert await bot.deliver(env) == (200, {})
    await bot.settle()
    assert await bot.deliver(env) == (200, {})  # Lark's retry: freshly signed, same envelope
    [msg] = await settled(bot)
    help_reply_ok(msg, env["event"]["message"]["message_id"])
    assert bot.lark.dedup_hits == 0  # dropped by our dedupe, not by Lark's uuid
    m = await metrics(bot)
    assert counter(m, "lark_events_duplicate", type="im.message.receive_v1") == 1
    assert counter(m, "lark_events_received", type="im.message.receive_v1") == 1


async def test_same_event_twice_concurrently_gets_one_reply(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_p2p")
    results = await asyncio.gather(*(bot.deliver(env) for _ in range(5)))
    assert results == [(200, {})] * 5
    assert len(await settled(bot)) == 1
    assert bot.lark.dedup_hits == 0


async def test_same_message_id_under_a_new_event_id_gets_one_reply(bot: BotHarness) -> None:
    first = bot.events.message("/help", chat_id="oc_p2p")
    message_id = first["event"]["message"]["message_id"]
    again = bot.events.message("/help", chat_id="oc_p2p", message_id=message_id)
    assert again["header"]["event_id"] != first["header"]["event_id"]
    assert await bot.deliver(first) == (200, {})
    await bot.settle()
    assert await bot.deliver(again) == (200, {})
    [msg] = await settled(bot)
    help_reply_ok(msg, message_id)
    assert bot.lark.dedup_hits == 0


async def test_dedupe_survives_a_restart(tmp_path: Path) -> None:
    async with FakeLark(APP_ID, APP_SECRET) as fake:
        async with BotHarness.start(tmp_path, lark=fake) as h:
            env = h.events.message("/help", chat_id="oc_p2p")
            assert await h.deliver(env) == (200, {})
            await h.settle()
        assert len(fake.sent_messages()) == 1
        async with BotHarness.start(tmp_path, lark=fake) as h2:
            assert await processed_keys(h2) == 2
            assert await h2.deliver(env) == (200, {})
            renamed = h2.events.message("/help", chat_id="oc_p2p",
                                        message_id=env["event"]["message"]["message_id"])
            assert await h2.deliver(renamed) == (200, {})
            await h2.settle()
            # A new message is still answered after the restart.
            assert await h2.deliver(h2.events.message("/help", chat_id="oc_p2p")) == (200, {})
            await h2.settle()
        assert len(fake.sent_messages()) == 2
        assert fake.dedup_hits == 0
        assert_fake_cards_valid(fake)


async def test_a_delivery_that_cannot_be_recorded_is_503_and_its_redelivery_is_answered(tmp_path: Path) -> None:
    """No 200 before the delivery is recorded: if the database cannot take it, Lark must retry."""
    async with BotHarness.start(tmp_path) as h:
        svc = h.services
        original, svc.dedupe = svc.dedupe, DedupeStore(svc.db.path, APP_ID, busy_timeout=0.05)
        try:
            env = h.events.message("/help", chat_id="oc_p2p")
            blocker = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock past the busy timeout
            try:
                status, body = await h.deliver(env)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            assert status == 503 and "retried" in body["error"]
            assert await settled(h) == []  # nothing ran
            assert counter(await metrics(h), "lark_events_rejected",
                           reason="cannot record the delivery now; it will be retried") == 1
            assert await h.deliver(env) == (200, {})  # Lark's retry
            [msg] = await settled(h)
            help_reply_ok(msg, env["event"]["message"]["message_id"])
        finally:
            await svc.dedupe.close()
            svc.dedupe = original


# -- checklist 9: a failing handler -------------------------------------------------------------------------


SECRET_DETAIL = "kaboom-internal-detail-42"


def boom_router(calls: list[str]) -> Router:
    router = Router("test_boom")

    @router.command("boom", T("Always fails", "总是失败"), hidden=True)
    async def boom(ctx: Context, args: str) -> Card:
        calls.append(args)
        raise RuntimeError(f"{SECRET_DETAIL} in {ctx.chat_id}")

    return router


async def test_a_raising_handler_is_200_audited_and_shown_as_a_generic_card(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    caplog.set_level(logging.ERROR, logger="bot")
    async with BotHarness.start(tmp_path, routers=[*default_routers(), boom_router(calls)]) as h:
        env = h.events.message("/boom now", chat_id="oc_p2p")
        assert await h.deliver(env) == (200, {})
        [msg] = await settled(h)
        assert calls == ["now"]
        assert msg["kind"] == "reply" and msg["reply_to"] == env["event"]["message"]["message_id"]
        card = msg["content"]
        assert card["header"]["title"]["content"] == "Something went wrong"
        shown = json.dumps(card, ensure_ascii=False)
        for leak in (SECRET_DETAIL, "RuntimeError", "Traceback", "File \"", "dispatch.py"):
            assert leak not in shown
        [row] = await audit_rows(h, kind="command", action="boom")
        assert row["outcome"] == "error" and row["chat_id"] == "oc_p2p"
        assert json.loads(row["detail"]) == {"args": "now", "error": "RuntimeError"}
        # The reference shown to the user is the one logged with the stack trace.
        [record] = [r for r in caplog.records if r.getMessage() == "handler failed"]
        assert record.exc_info is not None and SECRET_DETAIL in str(record.exc_info[1])
        assert record.__dict__["reference"] in texts(card)
        # No redelivery loop: Lark got a 200; a retry anyway changes nothing.
        assert await h.deliver(env) == (200, {})
        assert len(await settled(h)) == 1
        assert calls == ["now"]
        assert len(await audit_rows(h, kind="command", action="boom")) == 1
        m = await metrics(h)
        assert counter(m, "handler_errors", kind="command", name="boom") == 1


# -- who the bot listens to --------------------------------------------------------------------------------


async def test_bot_messages_are_ignored(bot: BotHarness) -> None:
    for sender_type in ("bot", "app"):
        env = bot.events.message("/help", chat_id="oc_p2p", sender_type=sender_type)
        assert await bot.deliver(env) == (200, {})
    assert await settled(bot) == []
    assert await audit_rows(bot) == []
    assert await bot.services.db.fetchall("SELECT * FROM chats") == []


def spawned_names(h: BotHarness, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every background task the bot starts from now on."""
    names: list[str] = []
    spawn = h.services.tasks.spawn

    def recording(coro: Any, **kw: Any) -> Any:
        names.append(kw["name"])
        return spawn(coro, **kw)

    monkeypatch.setattr(h.services.tasks, "spawn", recording)
    return names


async def test_group_chatter_without_mention_or_slash_is_ignored(bot: BotHarness,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    started = spawned_names(bot, monkeypatch)
    for text in ("hello everyone", "help", "see /help later"):
        env = bot.events.message(text, chat_id="oc_group", chat_type="group")
        assert await bot.deliver(env) == (200, {})
    assert await settled(bot) == []
    assert await audit_rows(bot) == []
    assert await bot.services.db.fetchall("SELECT * FROM chats") == []
    assert started == []  # decided in the request: no background work at all
    assert await processed_keys(bot) == 6  # and still recorded, so a redelivery stays ignored cheaply


async def test_a_mention_of_someone_else_is_chatter_once_the_bot_knows_its_id(
        bot: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    first = bot.events.message("/help", chat_id="oc_group", chat_type="group", mention_bot=True)
    assert await bot.deliver(first) == (200, {})  # the bot's id is read in the background, then answered
    assert len(await settled(bot)) == 1
    started = spawned_names(bot, monkeypatch)
    other = bot.events.message("lunch?", chat_id="oc_group", chat_type="group", mention_bot=True)
    other["event"]["message"]["mentions"][0]["id"]["open_id"] = "ou_colleague"
    assert await bot.deliver(other) == (200, {})
    again = bot.events.message("/help", chat_id="oc_group", chat_type="group", mention_bot=True)
    assert await bot.deliver(again) == (200, {})
    msgs = await settled(bot)
    assert [m["reply_to"] for m in msgs[1:]] == [again["event"]["message"]["message_id"]]
    assert started == [f"message {again['header']['event_id']}"]


async def test_a_triage_bug_is_logged_not_a_500(bot: BotHarness, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from bot.lark import webhook

    def broken(*_: Any) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(webhook, "triage", broken)
    caplog.set_level(logging.ERROR, logger="bot")
    env = bot.events.message("/help", chat_id="oc_p2p")
    assert await bot.deliver(env) == (200, {})  # recorded already: a 5xx would only bring a duplicate
    assert await settled(bot) == []
    [record] = [r for r in caplog.records if r.getMessage() == "message triage failed"]
    assert record.__dict__["event_id"] == env["header"]["event_id"] and record.exc_info is not None


async def test_a_message_event_without_message_fields_is_200_and_logged(
        bot: BotHarness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    env = bot.events.message("/help", chat_id="oc_p2p")
    del env["event"]["message"]["chat_id"]
    assert await bot.deliver(env) == (200, {})  # a redelivery would not be any better
    assert await settled(bot) == []
    assert [r.__dict__.get("event_id") for r in caplog.records
            if r.getMessage() == "message event without the fields of a message"] == [env["header"]["event_id"]]


async def test_group_message_mentioning_the_bot_runs_the_command(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_group", chat_type="group", mention_bot=True)
    assert await bot.deliver(env) == (200, {})
    [msg] = await settled(bot)
    help_reply_ok(msg, env["event"]["message"]["message_id"])
    [row] = await audit_rows(bot, kind="command", action="help")
    assert row["outcome"] == "ok" and row["chat_id"] == "oc_group" and row["actor"] == "ou_user"
    assert await bot.services.chats.chat_type("oc_group") == "group"


async def test_group_mention_without_a_command_gets_the_hint(bot: BotHarness) -> None:
    env = bot.events.message("hi there", chat_id="oc_group", chat_type="group", mention_bot=True)
    assert await bot.deliver(env) == (200, {})
    [msg] = await settled(bot)
    assert msg["content"]["header"]["title"]["content"] == "How can I help?"


async def test_group_message_starting_with_slash_runs_without_mention(bot: BotHarness) -> None:
    env = bot.events.message("/help", chat_id="oc_group", chat_type="group")
    assert await bot.deliver(env) == (200, {})
    [msg] = await settled(bot)
    help_reply_ok(msg, env["event"]["message"]["message_id"])


async def test_rich_text_post_with_a_command_runs(bot: BotHarness) -> None:
    env = bot.events.post_message([[{"tag": "text", "text": "/help"}]], chat_id="oc_group", chat_type="group",
                                  mention_bot=True)
    assert await bot.deliver(env) == (200, {})
    env2 = bot.events.post_message([[{"tag": "text", "text": "/audit"}]], chat_id="oc_p2p")
    assert await bot.deliver(env2) == (200, {})
    msgs = await settled(bot)
    assert len(msgs) == 2
    by_parent = {m["reply_to"]: m for m in msgs}
    help_reply_ok(by_parent[env["event"]["message"]["message_id"]], env["event"]["message"]["message_id"])
    assert by_parent[env2["event"]["message"]["message_id"]]["content"]["header"]["title"]["content"] == "Audit log"


async def test_unknown_command_gets_one_card_pointing_to_help(bot: BotHarness) -> None:
    env = bot.events.message("/frobnicate now", chat_id="oc_p2p")
    assert await bot.deliver(env) == (200, {})
    [msg] = await settled(bot)
    card = msg["content"]
    assert card["header"]["title"]["content"] == "Unknown command"
    assert "/frobnicate" in texts(card) and "/help" in texts(card)
    [btn] = card_buttons(card)
    assert btn["behaviors"] == [{"type": "callback", "value": {"k": "cmd", "v": 1, "command": "help", "args": ""}}]
    [row] = await audit_rows(bot, kind="command")
    assert (row["action"], row["outcome"]) == ("frobnicate", "unknown")


async def test_plain_text_in_p2p_gets_the_hint_card(bot: BotHarness) -> None:
    env = bot.events.message("what can you do?", chat_id="oc_p2p")
    assert await bot.deliver(env) == (200, {})
    [msg] = await settled(bot)
    card = msg["content"]
    assert card["header"]["title"]["content"] == "How can I help?"
    assert "/help" in texts(card)
    assert msg["reply_to"] == env["event"]["message"]["message_id"]


async def test_non_text_message_in_p2p_is_not_answered_with_an_error(bot: BotHarness) -> None:
    env = bot.events.message("", chat_id="oc_p2p", message_type="image")
    assert await bot.deliver(env) == (200, {})
    msgs = await settled(bot)
    assert all(m["content"]["header"]["template"] != "red" for m in msgs)


# -- operations endpoints ----------------------------------------------------------------------------------


async def test_metrics_count_received_rejected_and_duplicate(bot: BotHarness) -> None:
    before = await metrics(bot)
    env = bot.events.message("/help", chat_id="oc_p2p")
    await bot.deliver(env)
    await bot.deliver(env)
    body, headers = bot.events.sign_and_encode(bot.events.message("/help", chat_id="oc_p2p"))
    headers["X-Lark-Signature"] = "0" * 64
    await bot.post_raw(body, headers)
    await bot.post_raw(b"nope", signed(b"nope"))
    await bot.settle()
    after = await metrics(bot)

    def delta(name: str, **labels: str) -> float:
        return counter(after, name, **labels) - counter(before, name, **labels)

    assert delta("lark_events_received", type="im.message.receive_v1") == 1
    assert delta("lark_events_duplicate", type="im.message.receive_v1") == 1
    assert delta("lark_events_rejected", reason="bad signature") == 1
    assert delta("lark_events_rejected", reason="body is not JSON") == 1
    assert delta("lark_events_rejected") == 2


async def test_healthz(bot: BotHarness) -> None:
    async with bot.session.get(bot.url("/healthz")) as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}

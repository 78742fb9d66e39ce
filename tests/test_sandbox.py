"""Issue 6: sandbox mode (`python -m bot` without Lark credentials) and the chat console's API."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.sandbox import demo_data, sandbox_wanted
from bot.sandbox.app import build_sandbox_app
from bot.sandbox.console import SANDBOX, Sandbox
from bot.sandbox.mode import listen_address
from bot.services import SERVICES, Services
from bot.store.installations import InstallationStore
from bot.store.snapshots import SnapshotStore
from tests.cardcheck import assert_valid_card, elements, texts
from tests.harness import BotHarness

REPO = Path(__file__).resolve().parent.parent
DM, TEAM = demo_data.DM.chat_id, demo_data.TEAM.chat_id
MIA, OWEN = demo_data.MEMBER.open_id, demo_data.OWNER.open_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----- which mode -----------------------------------------------------------------------------------


def test_sandbox_is_chosen_without_lark_credentials_only(tmp_path: Path) -> None:
    missing = tmp_path / "no.env"
    assert sandbox_wanted({}, missing)
    assert sandbox_wanted({"PORT": "9000", "LOG_LEVEL": "DEBUG", "LARK_APP_ID": ""}, missing)
    # anything of a deployment (GHL credentials, secrets, a public URL, a database) rules the sandbox out
    for name in ("GHL_PRIVATE_TOKEN", "GHL_CLIENT_SECRET", "BOT_SECRET_KEY", "PUBLIC_BASE_URL", "DATABASE_URL"):
        assert not sandbox_wanted({name: "x"}, missing), name
    assert not sandbox_wanted({"LARK_APP_ID": "cli_real"}, missing)
    assert not sandbox_wanted({"lark_app_id": "cli_real"}, missing), "names are case-insensitive, as in Settings"
    # a half-configured real deployment gets the one-line configuration error, not a silent sandbox
    assert not sandbox_wanted({"LARK_APP_SECRET": "s", "LARK_VERIFICATION_TOKEN": "t"}, missing)
    env_file = tmp_path / ".env"
    env_file.write_text("LARK_APP_ID=cli_from_dotenv\n")
    assert not sandbox_wanted(None, env_file)
    env_file.write_text("PORT=9000\n")
    assert sandbox_wanted({}, env_file)


async def test_python_m_bot_without_credentials_starts_the_sandbox(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    env.update(PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1", PORT=str(port))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stderr.readline(), 15))
        assert first["msg"].startswith("sandbox mode:"), first
        assert first["mode"] == "sandbox" and f"http://127.0.0.1:{port}/sandbox" in first["msg"]
        printed = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert printed.startswith(f"Sandbox console: http://127.0.0.1:{port}/sandbox")
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 15
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the sandbox never became healthy"
                await asyncio.sleep(0.1)
            async with http.get(f"http://127.0.0.1:{port}/sandbox") as r:
                assert r.status == 200 and "Sandbox console" in await r.text()
        assert (tmp_path / "data" / "sandbox.db").exists()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_with_real_credentials_there_is_no_sandbox(tmp_path: Path) -> None:
    async with BotHarness.start(tmp_path) as h:
        for path in ("/sandbox", "/sandbox/api/state", f"/sandbox/api/chats/{DM}/messages"):
            async with h.session.get(h.url(path)) as r:
                assert r.status == 404, path
        async with h.session.post(h.url(f"/sandbox/api/chats/{DM}/messages"), json={"text": "/tags"}) as r:
            assert r.status in (404, 405)
        assert SANDBOX not in h.app


# ----- the sandbox in-process -----------------------------------------------------------------------


@dataclass
class Console:
    server: TestServer
    http: aiohttp.ClientSession
    box: Sandbox

    @property
    def svc(self) -> Services:
        return self.server.app[SERVICES]

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self.http.post(self.url(path), json=body) as r:
            data = await r.json()
            assert r.status == 200, data
            return data

    async def messages(self, chat_id: str) -> list[dict[str, Any]]:
        async with self.http.get(self.url(f"/sandbox/api/chats/{chat_id}/messages")) as r:
            assert r.status == 200
            return list((await r.json())["messages"])

    async def wait(self, chat_id: str, pred: Callable[[list[dict[str, Any]]], Any], timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = pred(await self.messages(chat_id))
            if found:
                return found
            assert time.monotonic() < deadline, await self.messages(chat_id)
            await asyncio.sleep(0.05)

    async def say(self, chat_id: str, text: str, user: str = MIA, **kw: Any) -> dict[str, Any]:
        """Send a message through the console; return the bot's card replying to it."""
        sent = await self.post(f"/sandbox/api/chats/{chat_id}/messages", {"text": text, "user": user, **kw})
        reply: dict[str, Any] = await self.wait(chat_id, lambda ms: next(
            (m for m in ms if m["kind"] == "bot" and (m["reply_to"] or {}).get("id") == sent["message_id"]), None))
        return reply


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    port = free_port()
    app = await build_sandbox_app(host="127.0.0.1", port=port, database=tmp_path / "data" / "sandbox.db")
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    http = aiohttp.ClientSession()
    try:
        yield Console(server, http, app[SANDBOX])
    finally:
        await http.close()
        await server.close()
    assert app[SANDBOX].ghl.invalid_requests == [], "every GHL request of the sandbox matches the spec"


def card_button(card: dict[str, Any], label: str) -> dict[str, Any]:
    [found] = [b for b in elements(card, "button") if b["text"]["content"] == label]
    return found


def callback(button: dict[str, Any]) -> dict[str, Any]:
    return dict(next(b["value"] for b in button["behaviors"] if b["type"] == "callback"))


async def test_demo_data_is_present(console: Console) -> None:
    ghl, svc = console.box.ghl, console.svc
    sunrise = ghl.locations[demo_data.SUNRISE]
    assert 190 <= len(sunrise.tags) <= 220
    names = [t["tag"] for t in sunrise.tags.values()]
    assert any(n.isascii() for n in names) and any(not n.isascii() for n in names), "English and Chinese tags"
    posts = list(sunrise.posts.values())
    assert any(p["summary"].isascii() for p in posts) and any(not p["summary"].isascii() for p in posts)
    assert all(p["tags"] for p in posts if p["status"] == "published")
    platforms = {a["platform"] for a in sunrise.accounts}
    assert {"facebook", "instagram", "twitter"} <= platforms and any(a["isExpired"] for a in sunrise.accounts)
    snapshots = SnapshotStore(svc.db)
    for loc in (demo_data.SUNRISE, demo_data.HARBOR, demo_data.LOTUS):
        assert await snapshots.count(loc) == demo_data.HISTORY_DAYS + 1
    assert svc.ghl is not None and isinstance(svc.ghl.installations, InstallationStore)
    assert {i.location_id for i in await svc.ghl.installations.list_active()} == {demo_data.HARBOR, demo_data.LOTUS}

    card = (await console.say(DM, "/tags"))["content"]
    assert_valid_card(card)
    assert f"of **{len(sunrise.tags)}**" in texts(card)


async def test_console_round_trip_message_click_and_update(console: Console) -> None:
    reply = await console.say(DM, "/tags")
    assert reply["sent_as"] == "reply" and reply["version"] == 0
    user_msgs = [m for m in await console.messages(DM) if m["kind"] == "user"]
    assert user_msgs[-1]["text"] == "/tags" and user_msgs[-1]["sender"]["open_id"] == MIA
    nxt = callback(card_button(reply["content"], "Next ›"))
    res = await console.post(f"/sandbox/api/chats/{DM}/actions",
                             {"message_id": reply["id"], "user": MIA, "value": nxt, "tag": "button"})
    assert res["status"] == 200 and res["card_updated"] is True
    [updated] = [m for m in await console.messages(DM) if m["id"] == reply["id"]]
    assert updated["version"] == 1 and updated["updated_by"] == ["callback"]
    assert "Showing **11–20**" in texts(updated["content"])

    # a form submission carries form_value and the submitting button's name
    search = card_button(updated["content"], "Search")
    res = await console.post(f"/sandbox/api/chats/{DM}/actions", {
        "message_id": reply["id"], "user": MIA, "value": callback(search), "name": search["name"],
        "form_value": {"q": "brew"}})
    [searched] = [m for m in await console.messages(DM) if m["id"] == reply["id"]]
    assert searched["version"] == 2 and "Cold Brew" in texts(searched["content"])


async def test_group_needs_a_mention_and_stats_carry_a_chart(console: Console) -> None:
    before = len(await console.messages(TEAM))
    await console.post(f"/sandbox/api/chats/{TEAM}/messages", {"text": "hello team", "user": OWEN, "mention": False})
    await asyncio.sleep(0.3)
    assert [m["kind"] for m in (await console.messages(TEAM))[before:]] == ["user"], "chatter is not for the bot"
    card = (await console.say(TEAM, "/stats", user=OWEN, mention=True))["content"]
    assert any(el.get("tag") == "chart" for el in card["body"]["elements"])
    assert "Facebook" in texts(card) and "Sunrise Coffee (old page)" in texts(card)


async def test_scheduler_work_on_demand(console: Console) -> None:
    res = await console.post(f"/sandbox/api/chats/{TEAM}/digest", {})
    assert res["outcome"] == "sent" and res["tz"] == "Asia/Shanghai"
    digest = await console.wait(TEAM, lambda ms: [m for m in ms if m["kind"] == "bot" and m["sent_as"] == "send"])
    assert digest[0]["content"]["header"]["title"]["content"] == "Daily digest"
    again = await console.post(f"/sandbox/api/chats/{TEAM}/digest", {})
    assert again["outcome"].startswith("extra copy")

    published = await console.post(f"/sandbox/api/chats/{TEAM}/publish", {"text": "Cold brew with oat milk is back!"})
    assert published["handled"] == 1
    post = console.box.ghl.locations[demo_data.SUNRISE].posts[published["post_id"]]
    tags = console.box.world.tag_ids[demo_data.SUNRISE]
    assert {tags["Cold Brew"], tags["Oat Milk"]} <= set(post["tags"]), "the group writes tags back to GHL"
    announced = await console.wait(TEAM, lambda ms: [m for m in ms if m["kind"] == "bot"
                                                     and "Cold brew with oat milk" in texts(m["content"])])
    assert "Cold Brew" in texts(announced[0]["content"])
    notes = [m["text"] for m in await console.messages(TEAM) if m["kind"] == "note"]
    assert any("digest" in n for n in notes) and any("published" in n for n in notes)


async def test_connect_runs_through_the_stand_in_marketplace_page(console: Console) -> None:
    notice = (await console.say(TEAM, "/connect", user=OWEN))["content"]
    assert "direct chat" in texts(notice) and not elements(notice, "button")  # the group never sees the link
    [sent] = await console.wait(DM, lambda ms: [m for m in ms if m["kind"] == "bot" and m["sent_as"] == "send"
                                                and "Connect GHL" in texts(m["content"])])
    card = sent["content"]
    [url] = [b["default_url"] for b in card_button(card, "Connect GHL")["behaviors"] if b["type"] == "open_url"]
    assert url.startswith(console.box.settings.public_base_url or "?")
    async with console.http.get(url.replace(console.box.settings.public_base_url or "", console.url("")),
                                allow_redirects=False) as r:
        assert r.status == 302
        choose = r.headers["Location"]
    assert urlparse(choose).path == "/sandbox/oauth/chooselocation"
    async with console.http.get(console.url(f"{urlparse(choose).path}?{urlparse(choose).query}")) as r:
        assert r.status == 200 and "Maple Street Bakery" in await r.text()
    q = {k: v[0] for k, v in parse_qs(urlparse(choose).query).items()}
    async with console.http.get(console.url("/sandbox/oauth/chooselocation"),
                                params={**q, "location_id": demo_data.MAPLE}, allow_redirects=False) as r:
        assert r.status == 302
        callback_url = r.headers["Location"]
    async with console.http.get(console.url(f"/oauth/ghl/callback?{urlparse(callback_url).query}")) as r:
        assert r.status == 200
    await console.wait(TEAM, lambda ms: [m for m in ms if m["kind"] == "bot" and m["sent_as"] == "send"
                                         and demo_data.MAPLE in texts(m["content"])])
    assert demo_data.MAPLE in await console.svc.chats.allowed_locations(TEAM)


async def test_fake_ghl_serves_without_openapi_core() -> None:
    """`pip install -e .` has no openapi-core (a test extra): the sandbox's fake GHL then skips validation."""
    script = (
        "import asyncio, sys\n"
        "sys.modules['openapi_core'] = None  # as if not installed\n"
        "import httpx\n"
        "from tests.fakes.ghl_api import VALIDATES, FakeGhl\n"
        "async def main():\n"
        "    async with FakeGhl() as ghl:\n"
        "        tok = ghl.add_private_token('loc_x')\n"
        "        ghl.add_tags('loc_x', ['Promo'])\n"
        "        async with httpx.AsyncClient() as http:\n"
        "            r = await http.get(ghl.base_url + '/social-media-posting/loc_x/tags',\n"
        "                               headers={'Authorization': 'Bearer ' + tok, 'Version': '2021-07-28'})\n"
        "        print(VALIDATES, r.status_code, r.json()['results']['count'])\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert out.decode().split() == ["False", "200", "1"]


async def test_bot_joining_a_chat_sends_the_welcome(console: Console) -> None:
    for chat, event_type in ((TEAM, "im.chat.member.bot.added_v1"),
                             (DM, "im.chat.access_event.bot_p2p_chat_entered_v1")):
        res = await console.post(f"/sandbox/api/chats/{chat}/joined", {"user": OWEN})
        assert res == {"status": 200, "event_type": event_type}
        [welcome] = await console.wait(chat, lambda ms: [m for m in ms if m["kind"] == "bot"])
        assert welcome["sent_as"] == "send" and "/tags" in texts(welcome["content"])


def test_the_sandbox_listens_on_loopback_even_when_the_platform_sets_host() -> None:
    assert listen_address({"HOST": "0.0.0.0", "PORT": "9000"}) == ("127.0.0.1", "9000")
    assert listen_address({"SANDBOX_HOST": "0.0.0.0"}) == ("0.0.0.0", "8080")


async def test_the_console_api_takes_only_json_so_other_sites_cannot_post_to_it(console: Console) -> None:
    url = console.url(f"/sandbox/api/chats/{DM}/messages")
    for kind in ("text/plain", "application/x-www-form-urlencoded"):  # what a cross-site form can send
        async with console.http.post(url, data='{"text": "/tags"}', headers={"Content-Type": kind}) as r:
            assert r.status == 415, kind
    assert [m for m in await console.messages(DM) if m.get("text") == "/tags"] == []

"""The chat console at `/sandbox`: a page that plays the Lark client against the built-in fake Lark.

The page (static/, served from memory) talks to a small JSON API:

* `GET  /sandbox/api/state` — users, chats, locations, the bot's name;
* `GET  /sandbox/api/chats/{chat}/messages` — the chat as the fake Lark saw it: the users' messages
  (recorded here) and the bot's sends and replies, each card with its PATCHes, delayed updates and
  inline callback answers applied in order (`version` counts them);
* `POST /sandbox/api/chats/{chat}/messages` `{text, user, mention}` — a real signed and encrypted
  `im.message.receive_v1`, POSTed to the bot's own `/lark/events` over loopback;
* `POST /sandbox/api/chats/{chat}/actions` `{message_id, user, value, tag, name, form_value, option,
  options, input_value, checked}` — a real signed `card.action.trigger`; answers the toast and whether
  the card changed;
* `POST /sandbox/api/chats/{chat}/joined` `{user}` — Lark's "bot added to the group" / "DM opened";
* `POST /sandbox/api/chats/{chat}/digest` — the scheduler's digest work for this chat, now;
* `POST /sandbox/api/chats/{chat}/publish` `{text?}` — a post published in the fake GHL, then the
  auto-tagging poll for the chat's location.

`/sandbox/oauth/chooselocation` stands in for GHL's Marketplace page, so `/connect` works end to end.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.config import Settings
from bot.digest import RunCounts, digest_service, local_date_of
from bot.ghl.hub import NoLocation
from bot.sandbox import demo_data
from bot.sandbox.demo_data import BOT_NAME, CHATS, USERS, DemoChat, DemoUser, DemoWorld
from bot.sandbox.fakes import VALIDATES, FakeGhl, FakeLark, LarkEventFactory
from bot.sandbox.mode import CONSOLE_PATH, SandboxSecrets
from bot.services import Services

log = logging.getLogger("bot.sandbox.console")

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "application/javascript", ".css": "text/css"}
MAX_TEXT = 4000
EVENT_TIMEOUT = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# ----- what the console remembers (the fake Lark remembers the bot's side) ------------------------


@dataclass
class UserMessage:
    message_id: str
    chat_id: str
    sender: DemoUser
    text: str
    mention: bool
    at: float  # time.monotonic(), like FakeLark's records


@dataclass
class Note:
    """A line of the console's own (not a Lark message): "digest triggered", "post published"."""

    note_id: str
    chat_id: str
    text: str
    at: float


@dataclass
class CardUpdate:
    message_id: str
    card: dict[str, Any]
    at: float
    source: str  # "callback" (inline raw card), "patch", "delayed"


@dataclass
class ChatLog:
    users: list[UserMessage] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    inline: list[CardUpdate] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # callback token -> clicked message_id

    def note(self, chat_id: str, text: str, at: float | None = None) -> None:
        """`at`: when the work started, so the note sits before the messages the work produced."""
        self.notes.append(Note(f"note_{secrets.token_hex(6)}", chat_id, text, time.monotonic() if at is None else at))

    def updates(self, lark: FakeLark) -> dict[str, list[CardUpdate]]:
        """Every change to a card, per message, oldest first."""
        out: dict[str, list[CardUpdate]] = {}
        found = list(self.inline)
        found += [CardUpdate(p["message_id"], p["content"], p["at"], "patch") for p in lark.patches()]
        for d in lark.delayed_updates():
            message_id = self.tokens.get(d["token"])
            if message_id is not None:
                found.append(CardUpdate(message_id, d["card"], d["at"], "delayed"))
        for u in sorted(found, key=lambda u: u.at):
            out.setdefault(u.message_id, []).append(u)
        return out

    def messages(self, chat_id: str, lark: FakeLark) -> list[dict[str, Any]]:
        """The chat in order: user messages, bot messages (cards with updates applied), notes."""
        wall = time.time() - time.monotonic()
        by_id = {m.message_id: m for m in self.users}
        items: list[dict[str, Any]] = []
        for m in self.users:
            if m.chat_id == chat_id:
                items.append({"id": m.message_id, "kind": "user", "at": m.at, "version": 0,
                              "sender": {"open_id": m.sender.open_id, "name": m.sender.name},
                              "text": m.text, "mention": m.mention})
        for n in self.notes:
            if n.chat_id == chat_id:
                items.append({"id": n.note_id, "kind": "note", "at": n.at, "version": 0, "text": n.text})
        updates = self.updates(lark)
        # The console has one direct chat for all demo users: it also shows what the bot sent to a user
        # directly (receive_id_type=open_id, e.g. a group's /connect link), which Lark puts in their DM.
        direct = {f"oc_p2p_{u.open_id}" for u in USERS} if chat_id == demo_data.DM.chat_id else set()
        for s in lark.sent_messages():
            if s["chat_id"] != chat_id and s["chat_id"] not in direct:
                continue
            changes = updates.get(s["message_id"], [])
            content = changes[-1].card if changes and s["msg_type"] == "interactive" else s["content"]
            parent = by_id.get(s["reply_to"] or "")
            items.append({"id": s["message_id"], "kind": "bot", "at": s["at"], "version": len(changes),
                          "msg_type": s["msg_type"], "content": content, "sent_as": s["kind"],
                          "updated_by": [c.source for c in changes],
                          "reply_to": None if parent is None else {"id": parent.message_id, "text": parent.text,
                                                                   "sender": parent.sender.name}})
        items.sort(key=lambda i: i["at"])
        for i in items:
            i["time_ms"] = int((wall + i.pop("at")) * 1000)
        return items


@dataclass
class Sandbox:
    """Everything the sandbox owns; `svc` is set once the bot's services are up."""

    settings: Settings
    secrets: SandboxSecrets = field(repr=False)
    lark: FakeLark
    ghl: FakeGhl
    events: LarkEventFactory
    world: DemoWorld
    log: ChatLog = field(default_factory=ChatLog)
    static: dict[str, bytes] = field(default_factory=dict)
    svc: Services | None = None

    def services(self) -> Services:
        if self.svc is None:
            raise web.HTTPServiceUnavailable(text="the bot is still starting")
        return self.svc


SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox", Sandbox)


# ----- helpers --------------------------------------------------------------------------------------


def _box(request: web.Request) -> Sandbox:
    return request.app[SANDBOX]


def _chat(request: web.Request) -> DemoChat:
    chat_id = request.match_info["chat_id"]
    for c in CHATS:
        if c.chat_id == chat_id:
            return c
    raise web.HTTPNotFound(text=f"no chat {chat_id!r} in the sandbox")


def _user(open_id: object) -> DemoUser:
    for u in USERS:
        if u.open_id == open_id:
            return u
    raise web.HTTPBadRequest(text="user must be one of the sandbox users")


async def _body(request: web.Request) -> dict[str, Any]:
    # Another site can make a browser POST a form or text/plain here, but not application/json without a
    # CORS preflight, which this server never grants: the console's own page always sends JSON.
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json")
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _self_url(request: web.Request) -> str:
    """The bot's own listening address (this very server), over loopback."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if not sock:
        raise web.HTTPServiceUnavailable(text="cannot tell which port the bot listens on")
    host = str(sock[0])
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{sock[1]}" if ":" in host else f"http://{host}:{sock[1]}"


async def deliver(request: web.Request, envelope: dict[str, Any]) -> tuple[int, Any]:
    """Sign (and encrypt) a Lark delivery and POST it to the bot's own /lark/events."""
    box = _box(request)
    body, headers = box.events.sign_and_encode(envelope)
    resp = await box.services().http.post(f"{_self_url(request)}/lark/events", content=body, headers=headers,
                                          timeout=EVENT_TIMEOUT)
    try:
        return resp.status_code, resp.json()
    except ValueError:
        return resp.status_code, resp.text


# ----- the page --------------------------------------------------------------------------------------


async def load_static() -> dict[str, bytes]:
    """Read the page's files once, off the event loop."""

    def read() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in STATIC_DIR.iterdir() if p.suffix in CONTENT_TYPES}

    return await asyncio.to_thread(read)


async def page(request: web.Request) -> web.Response:
    return _static_response(_box(request), "console.html")


async def static_file(request: web.Request) -> web.Response:
    return _static_response(_box(request), request.match_info["name"])


def _static_response(box: Sandbox, name: str) -> web.Response:
    data = box.static.get(name)
    if data is None:
        raise web.HTTPNotFound()
    ctype = CONTENT_TYPES[Path(name).suffix]
    return web.Response(body=data, content_type=ctype, charset="utf-8", headers={"Cache-Control": "no-cache"})


# ----- the API --------------------------------------------------------------------------------------


async def state(request: web.Request) -> web.Response:
    box = _box(request)
    locations = [{"id": loc.location_id, "name": loc.name, "via": loc.via} for loc in demo_data.LOCATIONS]
    return web.json_response({
        "bot": {"name": BOT_NAME, "open_id": box.lark.bot_open_id},
        "users": [{"open_id": u.open_id, "name": u.name, "role": u.role} for u in USERS],
        "chats": [{"id": c.chat_id, "name": c.name, "type": c.chat_type} for c in CHATS],
        "locations": locations,
        "ghl_requests_validated": VALIDATES,
    })


async def list_messages(request: web.Request) -> web.Response:
    box = _box(request)
    chat = _chat(request)
    return web.json_response({"chat_id": chat.chat_id, "messages": box.log.messages(chat.chat_id, box.lark)})


async def send_message(request: web.Request) -> web.Response:
    box = _box(request)
    chat = _chat(request)
    body = await _body(request)
    user = _user(body.get("user"))
    text = str(body.get("text") or "").strip()
    if not text or len(text) > MAX_TEXT:
        raise web.HTTPBadRequest(text=f"text must be 1–{MAX_TEXT} characters")
    mention = chat.chat_type == "group" and bool(body.get("mention", True))
    envelope = box.events.message(text, chat_id=chat.chat_id, chat_type="group" if chat.chat_type == "group"
                                  else "p2p", sender_open_id=user.open_id, mention_bot=mention)
    message_id = envelope["event"]["message"]["message_id"]
    box.lark.register_message(message_id, chat.chat_id)
    box.log.users.append(UserMessage(message_id, chat.chat_id, user, text, mention, time.monotonic()))
    status, _ = await deliver(request, envelope)
    return web.json_response({"message_id": message_id, "status": status}, status=200 if status == 200 else 502)


_ACTION_FIELDS = ("form_value", "option", "options", "input_value", "name", "checked")


async def card_action(request: web.Request) -> web.Response:
    box = _box(request)
    chat = _chat(request)
    body = await _body(request)
    user = _user(body.get("user"))
    message_id = body.get("message_id")
    value = body.get("value")
    if not isinstance(message_id, str) or not message_id:
        raise web.HTTPBadRequest(text="message_id is required")
    if not isinstance(value, dict):
        value = {}  # a select or input without a callback value still reports its choice
    extras = {k: body[k] for k in _ACTION_FIELDS if body.get(k) is not None}
    token = f"c-{secrets.token_hex(16)}"
    box.log.tokens[token] = message_id
    envelope = box.events.card_action(value, chat_id=chat.chat_id, message_id=message_id,
                                      operator_open_id=user.open_id, token=token,
                                      tag=str(body.get("tag") or "button"), **extras)
    status, answer = await deliver(request, envelope)
    answer = answer if isinstance(answer, dict) else {}
    new_card = answer.get("card")
    updated = isinstance(new_card, dict) and new_card.get("type") == "raw" and isinstance(new_card.get("data"), dict)
    if updated:
        assert isinstance(new_card, dict)
        box.log.inline.append(CardUpdate(message_id, new_card["data"], time.monotonic(), "callback"))
    return web.json_response({"status": status, "toast": answer.get("toast"), "card_updated": updated},
                             status=200 if status == 200 else 502)


async def bot_joins(request: web.Request) -> web.Response:
    """What Lark sends when the bot is added to the group (`im.chat.member.bot.added_v1`) or the user
    opens the DM (`im.chat.access_event.bot_p2p_chat_entered_v1`): the bot greets."""
    box = _box(request)
    chat = _chat(request)
    user = _user((await _body(request)).get("user"))
    if chat.chat_type == "group":
        envelope = box.events.bot_added(chat.chat_id, user.open_id, name=chat.name)
    else:
        envelope = box.events.p2p_entered(chat.chat_id, user.open_id)
    status, _ = await deliver(request, envelope)
    box.log.note(chat.chat_id, f"👋 Lark: {envelope['header']['event_type']} ({user.name})")
    return web.json_response({"status": status, "event_type": envelope["header"]["event_type"]},
                             status=200 if status == 200 else 502)


async def trigger_digest(request: web.Request) -> web.Response:
    """What the scheduler's digest job does for this chat, now (`bot.digest.DigestService.deliver`:
    recorded once per chat and local date, sent with its uuid). Once today's is recorded, another
    press sends an extra copy (the scheduled one would not repeat)."""
    box = _box(request)
    chat = _chat(request)
    svc = box.services()
    started = time.monotonic()
    service = digest_service(svc)
    tz = await service.zone_for(await service.schedules.get(chat.chat_id))
    now = svc.clock.time()
    day = local_date_of(now, tz)
    outcome = await service.deliver(chat.chat_id, day, tz, None, now, RunCounts())
    if outcome == "taken":
        card, _ = await service.build(chat.chat_id, day, tz, now)
        await svc.lark.send_card(chat.chat_id, card, uuid=f"sandbox-digest-{secrets.token_hex(8)}")
        outcome = "extra copy sent (today's digest was already recorded)"
    box.log.note(chat.chat_id, f"⏰ Scheduler: digest for {day.isoformat()} ({tz.key}) — {outcome}", started)
    return web.json_response({"outcome": outcome, "local_date": day.isoformat(), "tz": tz.key})


async def run_autotag_poll(svc: Services, location_id: str, now: float) -> int | None:
    """SCHEDULER HOOK: the auto-tagging post poll for one location (`bot.autotag.poll.poll_location`).
    Returns how many posts it handled; None if this build has no poller."""
    try:
        from bot.autotag.poll import poll_location
    except ImportError:  # pragma: no cover - the poller is part of the auto-tagging feature
        return None
    return await poll_location(svc, location_id, now)


async def publish_post(request: web.Request) -> web.Response:
    box = _box(request)
    chat = _chat(request)
    svc = box.services()
    started = time.monotonic()
    body = await _body(request) if request.can_read_body else {}
    assert svc.ghl is not None
    try:
        location_id = await svc.ghl.location_for(chat.chat_id)
    except NoLocation:
        raise web.HTTPConflict(text="this chat has no GHL location chosen (run /location)") from None
    text = str(body.get("text") or "").strip()[:MAX_TEXT] or demo_data.publish_text(box.world.published)
    box.world.published += 1
    accounts = box.world.reporting_accounts.get(location_id) or []
    chosen = [accounts[box.world.published % len(accounts)]] if accounts else []
    post = box.ghl.add_post(location_id, summary=text, tags=[], status="published",
                            published_at=datetime.now(UTC), account_ids=chosen)
    handled = await run_autotag_poll(svc, location_id, svc.clock.time() + 1)
    poll = "not available in this build" if handled is None else f"handled {handled} new post(s)"
    box.log.note(chat.chat_id, f"📣 GHL: post published in {location_id} — auto-tag poll {poll}", started)
    return web.json_response({"post_id": post["_id"], "location_id": location_id, "summary": text,
                              "handled": handled})


# ----- a stand-in for GHL's Marketplace "choose location" page ---------------------------------------


async def choose_location(request: web.Request) -> web.Response:
    box = _box(request)
    q = request.query
    if q.get("client_id") != box.secrets.ghl_client_id or q.get("redirect_uri") != box.settings.oauth_redirect_uri:
        raise web.HTTPBadRequest(text="unknown client_id or redirect_uri")
    chosen = q.get("location_id")
    if chosen:
        if chosen not in box.ghl.locations:
            raise web.HTTPBadRequest(text="unknown location")
        code = box.ghl.issue_code(chosen, redirect_uri=q["redirect_uri"])
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}")
    links = "".join(
        f'<li><a href="?{escape(urlencode({**q, "location_id": loc.location_id}))}">{escape(loc.name)}</a> '
        f"<code>{escape(loc.location_id)}</code></li>" for loc in box.ghl.locations.values())
    html = (f"<!doctype html><meta charset=utf-8><title>Choose a sub-account (sandbox)</title>"
            f"<body style='font-family:system-ui;max-width:40em;margin:3em auto'>"
            f"<h1>Choose a sub-account</h1><p>The sandbox's stand-in for GHL's Marketplace page. "
            f"Scopes asked: <code>{escape(q.get('scope', ''))}</code></p><ul>{links}</ul></body>")
    return web.Response(text=html, content_type="text/html")


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The console's API answers errors as JSON `{error}` (the page shows them as toasts)."""
    if not request.path.startswith(CONSOLE_PATH + "/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.text or exc.reason}, status=exc.status)


def install_console(app: web.Application, box: Sandbox) -> None:
    """Mount the console on the bot's app (sandbox mode only)."""
    app[SANDBOX] = box
    app.middlewares.append(json_errors)
    base = CONSOLE_PATH
    app.router.add_get(base, page)
    app.router.add_get(base + "/", page)
    app.router.add_get(base + "/static/{name}", static_file)
    app.router.add_get(base + "/api/state", state)
    app.router.add_get(base + "/api/chats/{chat_id}/messages", list_messages)
    app.router.add_post(base + "/api/chats/{chat_id}/messages", send_message)
    app.router.add_post(base + "/api/chats/{chat_id}/actions", card_action)
    app.router.add_post(base + "/api/chats/{chat_id}/joined", bot_joins)
    app.router.add_post(base + "/api/chats/{chat_id}/digest", trigger_digest)
    app.router.add_post(base + "/api/chats/{chat_id}/publish", publish_post)
    app.router.add_get(base + "/oauth/chooselocation", choose_location)





"""A fake Lark Open API on 127.0.0.1 (token, send, reply, PATCH, delayed update, chat info).

Usage::

    async with FakeLark("cli_test", "secret") as fake:
        client = MyLarkClient(base_url=fake.base_url, ...)
        ...
        await fake.wait_for(lambda f: len(f.sent_messages()) == 1)

Every request is recorded in ``fake.calls``; answers follow reference sections 7-10.
Kept cheap per request: it doubles as the Lark side of the benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer

__all__ = ["Call", "FakeLark", "Fault", "LarkApiError"]

CARD_MAX_BYTES = 30 * 1024
UUID_TTL_S = 3600.0
TOKEN_REUSE_MIN_LEFT_S = 1800.0
DELAYED_UPDATE_USES = 2
APP_SEND_QPS = 50
CHAT_SEND_QPS = 5
_TOKEN_HINT = " Please make a request with token attached."
RATE_HEADERS = {"x-ogw-ratelimit-limit": "50", "x-ogw-ratelimit-reset": "1"}

MSG_PATH = "/open-apis/im/v1/messages"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
DELAYED_PATH = "/open-apis/interactive/v1/card/update"
CHATS_PATH = "/open-apis/im/v1/chats"
BOT_INFO_PATH = "/open-apis/bot/v3/info"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LarkApiError(Exception):
    """Raised inside handlers; turned into Lark's error body ``{code, msg, error}``."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = dict(headers or {})


@dataclass
class Call:
    """One recorded request and the answer the fake gave."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    json: Any
    at: float  # time.monotonic() on arrival
    status: int = 0
    response: Any = None
    dedup: bool = False  # a send/reply answered from the uuid cache


_CALL = web.RequestKey("fake_lark_call", Call)


@dataclass
class Fault:
    """A scripted failure for requests whose path contains ``path_substring``."""

    path_substring: str
    status: int
    code: int
    headers: dict[str, str]
    times: int
    method: str | None = None
    msg: str = "injected fault"


@dataclass
class _Delivered:
    message_id: str
    chat_id: str | None
    msg_type: str
    at: float


@dataclass
class _Limiter:
    """Sliding 1 s windows of accepted sends: per app and per chat."""

    app: deque[float] = field(default_factory=deque)
    chats: dict[str, deque[float]] = field(default_factory=dict)

    @staticmethod
    def _count(window: deque[float], now: float) -> int:
        while window and now - window[0] >= 1.0:
            window.popleft()
        return len(window)

    def check(self, chat_id: str | None, now: float) -> None:
        if self._count(self.app, now) >= APP_SEND_QPS:
            raise LarkApiError(99991400, "request trigger frequency limit", 429, RATE_HEADERS)
        chat = self.chats.setdefault(chat_id, deque()) if chat_id else None
        if chat is not None and self._count(chat, now) >= CHAT_SEND_QPS:
            raise LarkApiError(
                230020, "This operation triggers the frequency limit.", 429, RATE_HEADERS
            )
        self.app.append(now)
        if chat is not None:
            chat.append(now)


def _rand(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def _ok(data: Any = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"code": 0, "msg": "success", **extra}
    if data is not None:
        body["data"] = data
    return web.json_response(body)


def _field_error(msg: str) -> LarkApiError:
    return LarkApiError(99992402, f"field validation failed: {msg}")


def _parse_card(raw: Any) -> dict[str, Any]:
    """Validate a Card JSON 2.0 (dict or JSON string) like the send/PATCH APIs do."""
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
    if len(text.encode("utf-8")) > CARD_MAX_BYTES:
        raise LarkApiError(230025, "The message content exceeds the length limit.")
    try:
        card = json.loads(text)
    except ValueError:
        raise LarkApiError(230099, "Failed to create card content: invalid JSON") from None
    if not isinstance(card, dict) or card.get("schema") != "2.0":
        raise LarkApiError(230099, 'Failed to create card content: "schema" must be "2.0"')
    config = card.get("config")
    if not isinstance(config, dict) or config.get("update_multi") is not True:
        raise LarkApiError(
            230099, "Failed to create card content: config.update_multi must be true"
        )
    return card


def _parse_content(msg_type: Any, content: Any) -> Any:
    if not isinstance(msg_type, str) or not msg_type:
        raise _field_error("msg_type is required")
    if not isinstance(content, str):
        raise _field_error("content must be a string")
    if msg_type == "interactive":
        return _parse_card(content)
    try:
        return json.loads(content)
    except ValueError:
        raise LarkApiError(230001, "Your request contains an invalid request parameter.") from None


class FakeLark(LoopbackServer):
    """In-process fake of the Lark Open API, served on 127.0.0.1:<free port>."""

    def __init__(
        self,
        app_id: str = "cli_test",
        app_secret: str = "secret",
        *,
        tenant_key: str = "tenant_test",
        bot_open_id: str = "ou_bot",
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.tenant_key = tenant_key
        self.bot_open_id = bot_open_id
        self.calls: list[Call] = []
        self.token_requests = 0
        self.token_ttl = 7200
        self.latency = 0.0
        self.enforce_rate_limits = False
        self.rate_limited = 0
        self.dedup_hits = 0
        self.chats: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, str | None] = {}  # message_id -> chat_id, known to the fake
        self.faults: list[Fault] = []
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._current_token: str | None = None
        self._uuids: dict[str, tuple[str, float]] = {}
        self._delivered: list[dict[str, Any]] = []
        self._patches: list[dict[str, Any]] = []
        self._delayed: list[dict[str, Any]] = []
        self._card_token_uses: dict[str, int] = {}
        self._limiter = _Limiter()
        self._by_id: dict[str, _Delivered] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ----- lifecycle ---------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application (usable with aiohttp's TestServer too)."""
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_post(MSG_PATH, self._send)
        app.router.add_post(MSG_PATH + "/{message_id}/reply", self._reply)
        app.router.add_patch(MSG_PATH + "/{message_id}", self._patch)
        app.router.add_post(DELAYED_PATH, self._delayed_update)
        app.router.add_get(CHATS_PATH + "/{chat_id}", self._chat)
        app.router.add_get(BOT_INFO_PATH, self._bot_info)
        return app

    # ----- test controls -----------------------------------------------------------

    def expire_tokens(self) -> None:
        """Invalidate every issued tenant_access_token (next calls get 99991663)."""
        self._tokens.clear()
        self._current_token = None

    def fail_next(
        self,
        path_substring: str,
        status: int = 429,
        code: int = 99991400,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
        *,
        method: str | None = None,
        msg: str = "injected fault",
    ) -> None:
        """Answer the next ``times`` matching requests with ``status``/``code``.

        ``headers`` defaults to the x-ogw-ratelimit headers for a 429, else none.
        """
        if headers is None:
            headers = RATE_HEADERS if status == 429 else {}
        verb = method.upper() if method else None
        self.faults.append(Fault(path_substring, status, code, dict(headers), times, verb, msg))

    def add_chat(
        self,
        chat_id: str,
        *,
        owner_id: str = "ou_owner",
        name: str = "Test group",
        chat_mode: str = "group",
        **extra: Any,
    ) -> None:
        """Register a chat for ``GET /im/v1/chats/{chat_id}``."""
        self.chats[chat_id] = {"owner_id": owner_id, "name": name, "chat_mode": chat_mode, **extra}

    def register_message(self, message_id: str, chat_id: str) -> None:
        """Tell the fake which chat a (user's) message lives in, for replies."""
        self.messages[message_id] = chat_id

    # ----- views -------------------------------------------------------------------

    def sent_messages(self) -> list[dict[str, Any]]:
        """Delivered sends and replies, in order (uuid replays excluded)."""
        return list(self._delivered)

    def patches(self) -> list[dict[str, Any]]:
        """Successful PATCHes: ``{message_id, content (card dict), at}``."""
        return list(self._patches)

    def delayed_updates(self) -> list[dict[str, Any]]:
        """Successful delayed updates: ``{token, card, at}``."""
        return list(self._delayed)

    def calls_to(self, path_substring: str, method: str | None = None) -> list[Call]:
        """Recorded calls whose path contains ``path_substring``."""
        return [
            c
            for c in self.calls
            if path_substring in c.path and (method is None or c.method == method.upper())
        ]

    async def wait_for(self, predicate: Callable[[FakeLark], Any], timeout: float = 5.0) -> Any:
        """Poll until ``predicate(self)`` is truthy; return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"fake Lark: condition not met within {timeout} s")
            await asyncio.sleep(0.01)

    # ----- plumbing ----------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=None,
            at=time.monotonic(),
        )
        self.calls.append(call)
        request[_CALL] = call
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            if request.can_read_body:
                call.json = await self._read_json(request)
            self._inject_fault(call)
            response = await handler(request)
        except LarkApiError as err:
            response = self._error(err)
        except web.HTTPException as exc:
            call.status = exc.status
            raise
        call.status = response.status
        if isinstance(response, web.Response) and response.body is not None:
            call.response = json.loads(response.text or "null")
        return response

    @staticmethod
    async def _read_json(request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except ValueError:
            raise LarkApiError(9499, "Bad Request: body is not valid JSON") from None

    def _inject_fault(self, call: Call) -> None:
        for fault in self.faults:
            if fault.path_substring in call.path and fault.method in (None, call.method):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                raise LarkApiError(fault.code, fault.msg, fault.status, fault.headers)

    @staticmethod
    def _error(err: LarkApiError) -> web.Response:
        body = {"code": err.code, "msg": err.msg, "error": {"log_id": _rand("log_")}}
        return web.json_response(body, status=err.status, headers=err.headers)

    def _check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token.strip():
            raise LarkApiError(99991661, "Missing access token for authorization." + _TOKEN_HINT)
        expiry = self._tokens.get(token.strip())
        if expiry is None or expiry <= time.monotonic():
            raise LarkApiError(99991663, "Invalid access token for authorization." + _TOKEN_HINT)

    @staticmethod
    def _call(request: web.Request) -> Call:
        return request[_CALL]

    @staticmethod
    def _body(request: web.Request) -> dict[str, Any]:
        call = FakeLark._call(request)
        if not isinstance(call.json, dict):
            raise _field_error("body must be a JSON object")
        return call.json

    # ----- endpoints ---------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        body = self._body(request)
        if body.get("app_id") != self.app_id or body.get("app_secret") != self.app_secret:
            raise LarkApiError(10003, "invalid param")
        self.token_requests += 1
        now = time.monotonic()
        token = self._current_token
        left = self._tokens.get(token, 0.0) - now if token else 0.0
        if token is None or left < min(TOKEN_REUSE_MIN_LEFT_S, self.token_ttl / 2):
            token = _rand("t-")
            self._tokens[token] = now + self.token_ttl
            self._current_token = token
            left = float(self.token_ttl)
        return web.json_response(
            {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": int(left)}
        )

    async def _send(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        call = self._call(request)
        body = self._body(request)
        id_type = request.query.get("receive_id_type", "")
        if id_type not in {"chat_id", "open_id", "union_id", "user_id", "email"}:
            raise _field_error("receive_id_type is required")
        receive_id = body.get("receive_id")
        if not isinstance(receive_id, str) or not receive_id:
            raise _field_error("receive_id is required")
        chat_id = receive_id if id_type == "chat_id" else f"oc_p2p_{receive_id}"
        record = {
            "kind": "send",
            "receive_id": receive_id,
            "receive_id_type": id_type,
            "reply_to": None,
        }
        return self._deliver(call, body, chat_id, record)

    async def _reply(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        call = self._call(request)
        body = self._body(request)
        parent = request.match_info["message_id"]
        record = {
            "kind": "reply",
            "receive_id": None,
            "receive_id_type": None,
            "reply_to": parent,
            "reply_in_thread": bool(body.get("reply_in_thread", False)),
        }
        return self._deliver(call, body, self.messages.get(parent), record, parent_id=parent)

    def _deliver(
        self,
        call: Call,
        body: dict[str, Any],
        chat_id: str | None,
        record: dict[str, Any],
        parent_id: str = "",
    ) -> web.Response:
        msg_type = body.get("msg_type")
        content = _parse_content(msg_type, body.get("content"))
        uid = body.get("uuid")
        now = time.monotonic()
        cached = self._uuid_hit(uid, now)
        if cached is not None:
            self.dedup_hits += 1
            call.dedup = True
            return _ok(self._message_data(cached, parent_id))
        if self.enforce_rate_limits:
            try:
                self._limiter.check(chat_id, now)
            except LarkApiError:
                self.rate_limited += 1
                raise
        message = _Delivered(_rand("om_"), chat_id, str(msg_type), now)
        self.messages[message.message_id] = chat_id
        if isinstance(uid, str) and uid:
            self._uuids[uid] = (message.message_id, now)
        self._delivered.append(
            {
                **record,
                "message_id": message.message_id,
                "chat_id": chat_id,
                "msg_type": msg_type,
                "content": content,
                "uuid": uid,
                "at": now,
            }
        )
        self._by_id[message.message_id] = message
        return _ok(self._message_data(message, parent_id))

    def _uuid_hit(self, uid: Any, now: float) -> _Delivered | None:
        if not isinstance(uid, str) or not uid:
            return None
        hit = self._uuids.get(uid)
        if hit is None or now - hit[1] >= UUID_TTL_S:
            return None
        return self._by_id[hit[0]]

    def _message_data(self, message: _Delivered, parent_id: str) -> dict[str, Any]:
        created = str(int(time.time() * 1000))
        return {
            "message_id": message.message_id,
            "root_id": parent_id,
            "parent_id": parent_id,
            "chat_id": message.chat_id,
            "msg_type": message.msg_type,
            "create_time": created,
            "update_time": created,
            "deleted": False,
            "updated": False,
            "sender": {
                "id": self.app_id,
                "id_type": "app_id",
                "sender_type": "app",
                "tenant_key": self.tenant_key,
            },
        }

    async def _patch(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        body = self._body(request)
        content = body.get("content")
        if not isinstance(content, str):
            raise _field_error("content must be a string")
        card = _parse_card(content)
        message_id = request.match_info["message_id"]
        self._patches.append({"message_id": message_id, "content": card, "at": time.monotonic()})
        return _ok({})

    async def _delayed_update(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        body = self._body(request)
        token = body.get("token")
        if not isinstance(token, str) or not token.startswith("c-"):
            raise _field_error("token must be the card callback token (c-...)")
        card = body.get("card")
        if not isinstance(card, dict):
            raise _field_error("card must be an object")
        _parse_card(card)
        uses = self._card_token_uses.get(token, 0)
        if uses >= DELAYED_UPDATE_USES:
            raise LarkApiError(200830, "card update token has been used up")
        self._card_token_uses[token] = uses + 1
        self._delayed.append({"token": token, "card": card, "at": time.monotonic()})
        return _ok()

    async def _bot_info(self, request: web.Request) -> web.Response:
        """``GET /open-apis/bot/v3/info``: the bot's own identity (top-level ``bot``, no ``data``)."""
        self._check_auth(request)
        bot = {"activate_status": 2, "app_name": "Social Planner Bot", "avatar_url": "",
               "ip_white_list": [], "open_id": self.bot_open_id}
        return web.json_response({"code": 0, "msg": "ok", "bot": bot})

    async def _chat(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        chat_id = request.match_info["chat_id"]
        chat = self.chats.get(chat_id)
        if chat is None:
            raise LarkApiError(230002, "The bot is not in the chat.")
        data = {
            "chat_id": chat_id,
            "owner_id_type": request.query.get("user_id_type", "open_id"),
            "chat_type": "private",
            "external": False,
            "tenant_key": self.tenant_key,
            "description": "",
            **chat,
        }
        return _ok(data)

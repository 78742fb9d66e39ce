"""Async Lark Open API client on the shared httpx session.

Why not lark-oapi's own `a*` calls: they open a new HTTP client per call and fetch the tenant
token with blocking `requests` (see shared/reference/lark.md §13). Here: one session, a token
cache refreshed 10 minutes early under a single-flight lock, and the platform's rate ceilings
(50/s and 1000/min per app, 5/s per chat, 5/s per PATCHed message) enforced before sending.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from bot.clock import Clock
from bot.metrics import Metrics
from bot.ratelimit import KeyedWindows, SlidingWindow

log = logging.getLogger("bot.lark")

TOKEN_INVALID = {99991663, 99991661, 99991664}
RATE_LIMITED = {99991400}
CHAT_RATE_LIMITED = {230020}
OVERLOADED = {11232}
CHAT_GONE = {230002, 230005, 230017, 232011}


class LarkApiError(Exception):
    def __init__(self, code: int, msg: str, *, http_status: int, log_id: str | None = None) -> None:
        super().__init__(f"Lark API error {code}: {msg}" + (f" (log_id {log_id})" if log_id else ""))
        self.code, self.msg, self.http_status, self.log_id = code, msg, http_status, log_id

    @property
    def chat_unavailable(self) -> bool:
        return self.code in CHAT_GONE


class Window(Protocol):
    def wait_time(self) -> float: ...

    def stamp(self) -> None: ...


@dataclass
class LarkLimits:
    """Our ceilings sit a little under Lark's so clock skew between us and Lark never trips them.

    A window longer than Lark's 1 s absorbs the jitter between our stamp and Lark's arrival time:
    5 per 1.05 s tripped 230020 on a loaded host, where a burst of five leaves over > 50 ms.
    """

    app_per_second: Window
    app_per_minute: Window
    chat: KeyedWindows
    patch: KeyedWindows

    @classmethod
    def platform(cls) -> LarkLimits:
        return cls(SlidingWindow(46, 1.0, pace=True), SlidingWindow(1000, 60.0), KeyedWindows(5, 1.25),
                   KeyedWindows(5, 1.25))

    @classmethod
    def unlimited(cls) -> LarkLimits:
        from bot.ratelimit import Unlimited

        return cls(Unlimited(), Unlimited(), KeyedWindows(1_000_000, 1.0), KeyedWindows(1_000_000, 1.0))


class LarkClient:
    def __init__(self, http: httpx.AsyncClient, *, domain: str, app_id: str, app_secret: str, clock: Clock,
                 metrics: Metrics | None = None, limits: LarkLimits | None = None, max_attempts: int = 4) -> None:
        self._http, self._base = http, domain.rstrip("/")
        self._app_id, self._app_secret = app_id, app_secret
        self._clock, self._metrics = clock, metrics
        self.limits = limits or LarkLimits.platform()
        self._max_attempts = max_attempts
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        self._admit_lock = asyncio.Lock()
        self._bot_open_id: str | None = None

    # -- token -----------------------------------------------------------------------------

    async def tenant_token(self) -> str:
        if self._token and self._clock.monotonic() < self._token_expires:
            return self._token
        async with self._token_lock:
            if self._token and self._clock.monotonic() < self._token_expires:
                return self._token
            resp = await self._http.post(f"{self._base}/open-apis/auth/v3/tenant_access_token/internal",
                                         json={"app_id": self._app_id, "app_secret": self._app_secret})
            body = _json(resp)
            if body.get("code") != 0 or "tenant_access_token" not in body:
                self._count("token", "error")
                raise LarkApiError(int(body.get("code", -1)), str(body.get("msg", "token request failed")),
                                   http_status=resp.status_code)
            self._count("token", "ok")
            self._token = str(body["tenant_access_token"])
            self._token_expires = self._clock.monotonic() + max(60.0, float(body.get("expire", 7200)) - 600.0)
            return self._token

    def invalidate_token(self, token: str | None = None) -> None:
        if token is None or token == self._token:
            self._token, self._token_expires = None, 0.0

    # -- messages --------------------------------------------------------------------------

    async def send_card(self, chat_id: str, card: dict[str, Any], *, uuid: str | None = None,
                        receive_id_type: str = "chat_id") -> str:
        body: dict[str, Any] = {"receive_id": chat_id, "msg_type": "interactive",
                                "content": json.dumps(card, ensure_ascii=False)}
        if uuid:
            body["uuid"] = uuid[:50]
        data = await self._call("POST", "/open-apis/im/v1/messages", op="send", json_body=body,
                                params={"receive_id_type": receive_id_type}, chat_key=chat_id)
        return str(data.get("message_id", ""))

    async def reply_card(self, message_id: str, card: dict[str, Any], *, chat_id: str,
                         uuid: str | None = None) -> str:
        body: dict[str, Any] = {"msg_type": "interactive", "content": json.dumps(card, ensure_ascii=False)}
        if uuid:
            body["uuid"] = uuid[:50]
        data = await self._call("POST", f"/open-apis/im/v1/messages/{message_id}/reply", op="reply",
                                json_body=body, chat_key=chat_id)
        return str(data.get("message_id", ""))

    async def patch_card(self, message_id: str, card: dict[str, Any]) -> None:
        await self._call("PATCH", f"/open-apis/im/v1/messages/{message_id}", op="patch",
                         json_body={"content": json.dumps(card, ensure_ascii=False)}, patch_key=message_id)

    async def delayed_update(self, token: str, card: dict[str, Any]) -> None:
        """Update a clicked card with the callback's token; only after the callback was answered."""
        await self._call("POST", "/open-apis/interactive/v1/card/update", op="delayed_update",
                         json_body={"token": token, "card": card})

    async def chat_info(self, chat_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/open-apis/im/v1/chats/{chat_id}", op="chat_info", limited=False)

    @property
    def known_bot_open_id(self) -> str | None:
        """The bot's open_id if already read (no request); see `bot_open_id`."""
        return self._bot_open_id

    async def bot_open_id(self) -> str | None:
        """The bot's own open_id (to recognise its @mentions); None if Lark cannot tell."""
        if self._bot_open_id is None:
            try:
                resp = await self._authed("GET", "/open-apis/bot/v3/info", None, None)
                body = _json(resp)
                bot = body.get("bot")
                self._bot_open_id = str(bot.get("open_id") or "") or None if isinstance(bot, dict) else None
            except (httpx.HTTPError, LarkApiError):
                log.warning("could not read the bot's open_id")
        return self._bot_open_id

    # -- transport -------------------------------------------------------------------------

    async def _authed(self, method: str, path: str, json_body: dict[str, Any] | None,
                      params: dict[str, str] | None) -> httpx.Response:
        token = await self.tenant_token()
        return await self._http.request(method, f"{self._base}{path}", json=json_body, params=params,
                                        headers={"Authorization": f"Bearer {token}"})

    async def _call(self, method: str, path: str, *, op: str, json_body: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None, chat_key: str | None = None,
                    patch_key: str | None = None, limited: bool = True) -> dict[str, Any]:
        token_retried = False
        attempt = 0
        while True:  # up to max_attempts tries, plus one for a token Lark no longer accepts
            attempt += 1
            try:
                if limited:
                    await self.tenant_token()  # first: a token fetch after admission would make the slots stale
                    await self._admit(chat_key, patch_key)
                resp = await self._authed(method, path, json_body, params)
            except httpx.TransportError:
                self._count(op, "transport_error")
                if attempt >= self._max_attempts:
                    raise
                await self._clock.sleep(_backoff(attempt))
                continue
            body = _json(resp)
            code = int(body.get("code", 0 if resp.is_success else -1))
            if code == 0 and resp.is_success:
                self._count(op, "ok")
                data = body.get("data")
                return data if isinstance(data, dict) else body
            log_id = (body.get("error") or {}).get("log_id") if isinstance(body.get("error"), dict) else None
            err = LarkApiError(code, str(body.get("msg", "")), http_status=resp.status_code, log_id=log_id)
            if code in TOKEN_INVALID and not token_retried:
                self._count(op, "token_retry")
                self.invalidate_token()
                token_retried = True
                attempt -= 1  # a fresh token is not a retry of the request
                continue
            wait = self._retry_wait(resp, code, attempt)
            if wait is None or attempt >= self._max_attempts:
                self._count(op, f"error_{code}")
                log.warning("lark call failed", extra={"op": op, "code": code, "log_id": log_id})
                raise err
            self._count(op, "throttled" if code in RATE_LIMITED | CHAT_RATE_LIMITED else "retry")
            if code in CHAT_RATE_LIMITED and chat_key:
                self.limits.chat.get(chat_key).pause(wait)
            await self._clock.sleep(wait)

    async def _admit(self, chat_key: str | None, patch_key: str | None) -> None:
        """Take a slot in every window that applies (app/s, app/min, chat, message) at one instant.

        Acquiring them one after another stamps the first windows while the request still waits
        for a later one, so requests leave later than their stamps and bunch up at Lark. Only one
        caller at a time (FIFO) waits for the app-wide windows: hundreds of senders all waking at
        each slot to re-check would congest the loop exactly when the admitted request should go
        out, and the late writes bunch up at Lark (measured: 429s at 47/s with 500 senders).
        """
        keyed: list[Window] = []
        if chat_key:
            keyed.append(self.limits.chat.get(chat_key))
        if patch_key:
            keyed.append(self.limits.patch.get(patch_key))
        app: list[Window] = [self.limits.app_per_second, self.limits.app_per_minute]
        while True:
            await _wait_for(keyed)
            async with self._admit_lock:
                await _wait_for(app)
                if all(w.wait_time() <= 0 for w in keyed):  # another sender to this chat may have won it
                    for w in (*app, *keyed):  # no await since the checks: one instant for every window
                        w.stamp()
                    return

    @staticmethod
    def _retry_wait(resp: httpx.Response, code: int, attempt: int) -> float | None:
        if resp.status_code == 429 or code in RATE_LIMITED | CHAT_RATE_LIMITED:
            reset = resp.headers.get("x-ogw-ratelimit-reset")
            try:
                base = float(reset) if reset else 1.0
            except ValueError:
                base = 1.0
            return base + random.uniform(0.05, 0.3)
        if code in OVERLOADED or resp.status_code >= 500:
            return _backoff(attempt)
        return None

    def _count(self, op: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.outbound.labels("lark", op, outcome).inc()


async def _wait_for(windows: list[Window]) -> None:
    """Sleep exactly as long as the tightest window asks, until all of them have room."""
    while True:
        wait = max((w.wait_time() for w in windows), default=0.0)
        if wait <= 0:
            return
        await asyncio.sleep(wait)


def _backoff(attempt: int) -> float:
    return float(min(8.0, 0.25 * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2))


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"code": -1, "msg": f"non-JSON answer (HTTP {resp.status_code})"}
    return body if isinstance(body, dict) else {"code": -1, "msg": "unexpected answer"}

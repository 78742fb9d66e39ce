"""The real bot server, in-process on a real loopback port, wired to the fakes.

    async with BotHarness.start(tmp_path) as h:
        await h.deliver(h.events.message("/help", chat_id="oc_1"))
        [reply] = await h.lark.wait_for(lambda f: f.sent_messages())
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.clock import Clock
from bot.config import Settings, load_settings
from bot.lark.client import LarkLimits
from bot.registry import Router
from bot.server import create_app
from bot.services import SERVICES, Services
from tests.fakes.ghl_api import FakeGhl
from tests.fakes.lark_api import FakeLark
from tests.fakes.lark_events import LarkEventFactory

APP_ID = "cli_test"
APP_SECRET = "app-secret-value"
VERIFICATION_TOKEN = "verification-token-value"
ENCRYPT_KEY = "encrypt-key-value"


def make_settings(db_path: Path, lark_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "lark_app_id": APP_ID, "lark_app_secret": APP_SECRET,
        "lark_verification_token": VERIFICATION_TOKEN, "lark_encrypt_key": ENCRYPT_KEY,
        "lark_domain": lark_base, "database_url": f"sqlite:///{db_path}", "host": "127.0.0.1",
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class BotHarness:
    lark: FakeLark
    server: TestServer
    session: aiohttp.ClientSession
    events: LarkEventFactory
    app: web.Application

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @classmethod
    @asynccontextmanager
    async def start(cls, tmp_path: Path, *, clock: Clock | None = None, encrypt: bool = True,
                    lark: FakeLark | None = None, app_hook: Any = None, routers: list[Router] | None = None,
                    ghl: FakeGhl | None = None, **overrides: Any) -> AsyncIterator[BotHarness]:
        """`ghl=` points GHL_API_BASE at that fake; pass GHL credentials as settings overrides."""
        own_fake = lark is None
        fake = lark or FakeLark(APP_ID, APP_SECRET)
        if own_fake:
            await fake.start()
        if not encrypt:
            overrides.setdefault("lark_encrypt_key", None)
        if ghl is not None:
            overrides.setdefault("ghl_api_base", ghl.base_url)
        # The scheduler's loop stays off unless a test asks for it: tests drive ticks explicitly.
        overrides.setdefault("scheduler_enabled", False)
        settings = make_settings(tmp_path / "bot.db", fake.base_url, **overrides)
        app = create_app(settings, clock=clock, routers=routers,
                         lark_limits=overrides.pop("_limits", None) or LarkLimits.platform())
        if app_hook is not None:
            app_hook(app)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        session = aiohttp.ClientSession()
        events = LarkEventFactory(APP_ID, VERIFICATION_TOKEN, ENCRYPT_KEY if encrypt else None)
        try:
            yield cls(fake, server, session, events, app)
        finally:
            await session.close()
            await server.close()
            if own_fake:
                await fake.close()

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post_raw(self, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        async with self.session.post(self.url("/lark/events"), data=body, headers=headers) as resp:
            text = await resp.text()
            try:
                import json

                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def deliver(self, envelope: dict[str, Any], **sign: Any) -> tuple[int, Any]:
        body, headers = self.events.sign_and_encode(envelope, **sign)
        return await self.post_raw(body, headers)

    async def settle(self) -> None:
        """Wait for every background task the delivery started (replies, follow-ups)."""
        await asyncio.sleep(0)
        await self.services.tasks.idle()

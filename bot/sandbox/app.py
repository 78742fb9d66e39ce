"""Build the sandbox: the fakes on loopback, the demo world, the real bot app, and the console on top."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from bot.clock import Clock
from bot.sandbox.console import Sandbox, install_console, load_static
from bot.sandbox.demo_data import BOT_NAME, BOT_OPEN_ID, SUNRISE, seed_ghl, seed_lark, seed_store
from bot.sandbox.fakes import FakeGhl, FakeLark, LarkEventFactory
from bot.sandbox.mode import SandboxSecrets, sandbox_settings
from bot.server import create_app
from bot.services import Services

log = logging.getLogger("bot.sandbox")


def _reset(database: Path) -> None:
    """The fakes start empty at every start, so the stored state does too."""
    database.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


async def build_sandbox_app(*, host: str, port: int, database: Path, clock: Clock | None = None,
                            public_base_url: str | None = None) -> web.Application:
    """The real bot app wired to a fake Lark and a fake GHL (both on 127.0.0.1, free ports) with the
    demo data, plus the console routes. The fakes stop when the app is cleaned up."""
    await asyncio.to_thread(_reset, database)
    sec = SandboxSecrets()
    lark = FakeLark(sec.lark_app_id, sec.lark_app_secret, bot_open_id=BOT_OPEN_ID)
    ghl = FakeGhl(client_id=sec.ghl_client_id, client_secret=sec.ghl_client_secret)
    ghl.record_calls = False  # a long-running sandbox must not keep every request
    await lark.start()
    try:
        await ghl.start()
        world = seed_ghl(ghl, datetime.now(UTC))
        ghl.add_private_token(SUNRISE, sec.ghl_private_token)
        seed_lark(lark)
        settings = await asyncio.to_thread(  # Settings also reads ./.env: off the event loop
            sandbox_settings, sec, lark_base=lark.base_url, ghl_base=ghl.base_url, host=host, port=port,
            database=database, public_base_url=public_base_url)
        events = LarkEventFactory(sec.lark_app_id, sec.verification_token, sec.encrypt_key, BOT_OPEN_ID,
                                  tenant_key=lark.tenant_key, bot_name=BOT_NAME)
        box = Sandbox(settings=settings, secrets=sec, lark=lark, ghl=ghl, events=events, world=world,
                      static=await load_static())

        async def seed(svc: Services) -> AsyncIterator[None]:
            await seed_store(svc, ghl, world)
            box.svc = svc
            log.info("sandbox ready", extra={"lark_fake": lark.base_url, "ghl_fake": ghl.base_url})
            yield
            box.svc = None

        app = create_app(settings, clock=clock, start_hooks=[seed])
        install_console(app, box)
    except BaseException:
        await ghl.close()
        await lark.close()
        raise

    async def stop_fakes(_: web.Application) -> None:
        await ghl.close()
        await lark.close()

    app.on_cleanup.append(stop_fakes)
    return app

"""`python -m bot`: settings → server. A bad setting stops the start with one line."""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from bot.config import SettingsError, load_settings
from bot.logs import setup_logging
from bot.sandbox import run_sandbox, sandbox_wanted
from bot.server import create_app


def main() -> int:
    if sandbox_wanted():  # no Lark app configured: the sandbox (fake Lark + fake GHL + chat console)
        return run_sandbox()
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)
    logging.getLogger("bot").info("starting", extra={"host": settings.host, "port": settings.port,
                                                     "lark_domain": settings.lark_domain})
    web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None,
                shutdown_timeout=15.0, handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

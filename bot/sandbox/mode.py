"""Sandbox mode: chosen when no Lark app is configured, with settings that point at the built-in fakes.

`python -m bot` without `LARK_APP_ID` (and without any other Lark credential, in the environment or
`.env`) runs the real bot against a fake Lark Open API and a fake GHL on loopback, with demo data and
a chat console at `/sandbox`. Every secret is generated per start; storage is `./data/sandbox.db`,
recreated at each start (the fakes live in memory, so the stored state starts over with them).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from bot.config import Settings, SettingsError, load_settings

log = logging.getLogger("bot.sandbox")

TRIGGER = "LARK_APP_ID"
CREDENTIALS = (TRIGGER, "LARK_APP_SECRET", "LARK_VERIFICATION_TOKEN", "LARK_ENCRYPT_KEY")
# Any of these means a deployment is being configured: never fall back to the sandbox then.
DEPLOYMENT = ("GHL_PRIVATE_TOKEN", "GHL_LOCATION_ID", "GHL_CLIENT_ID", "GHL_CLIENT_SECRET", "BOT_SECRET_KEY",
              "PUBLIC_BASE_URL", "DATABASE_URL", "AUDIT_EXPORT_TOKEN")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DATABASE = Path("data") / "sandbox.db"
CONSOLE_PATH = "/sandbox"


def _lookup(values: Mapping[str, str | None], name: str) -> str | None:
    """pydantic-settings matches variable names case-insensitively: so do we."""
    for key, value in values.items():
        if key.upper() == name and value:
            return value
    return None


def _env(env_file: Path) -> dict[str, str | None]:
    merged: dict[str, str | None] = dict(dotenv_values(env_file)) if env_file.is_file() else {}
    merged.update(os.environ)  # the environment wins over .env, as in Settings
    return merged


def sandbox_wanted(environ: Mapping[str, str | None] | None = None, env_file: Path = Path(".env")) -> bool:
    """True when nothing of a deployment is configured: no Lark credential and no GHL, secret, public
    URL or database setting, in the environment or `.env`. With some of them set, a real deployment
    lacks one: that is a configuration error naming it, never a silent sandbox."""
    values = _env(env_file) if environ is None else environ
    return all(_lookup(values, name) is None for name in (*CREDENTIALS, *DEPLOYMENT))


@dataclass(frozen=True)
class SandboxSecrets:
    """Generated at each start; never printed (they are registered with the log scrubber)."""

    lark_app_id: str = "cli_sandbox"
    lark_app_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    verification_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    encrypt_key: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    ghl_private_token: str = field(default_factory=lambda: f"pit-{secrets.token_hex(16)}", repr=False)
    ghl_client_id: str = "sandbox-client-id"
    ghl_client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    bot_secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)


def listen_address(environ: Mapping[str, str | None] | None = None) -> tuple[str, str]:
    """Loopback (127.0.0.1) and PORT (default 8080). The console has no login, so a platform's HOST=0.0.0.0
    is ignored; only an explicit SANDBOX_HOST binds elsewhere."""
    values = _env(Path(".env")) if environ is None else environ
    return _lookup(values, "SANDBOX_HOST") or DEFAULT_HOST, _lookup(values, "PORT") or str(DEFAULT_PORT)


def url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def sandbox_settings(sec: SandboxSecrets, *, lark_base: str, ghl_base: str, host: str, port: int | str,
                     database: Path, public_base_url: str | None = None) -> Settings:
    """The bot's settings for the sandbox: the other variables (LOG_LEVEL, DEFAULT_TIMEZONE …) still
    come from the environment, but nothing here can reach a real Lark or GHL."""
    public = public_base_url or f"http://{url_host(host)}:{port}"
    return load_settings(
        host=host, port=port,
        lark_app_id=sec.lark_app_id, lark_app_secret=sec.lark_app_secret,
        lark_verification_token=sec.verification_token, lark_encrypt_key=sec.encrypt_key, lark_domain=lark_base,
        ghl_api_base=ghl_base, ghl_private_token=sec.ghl_private_token, ghl_location_id=_main_location(),
        ghl_client_id=sec.ghl_client_id, ghl_client_secret=sec.ghl_client_secret,
        ghl_authorize_url=f"{public}{CONSOLE_PATH}/oauth/chooselocation", public_base_url=public,
        bot_secret_key=sec.bot_secret_key, database_url=f"sqlite:///{database}",
    )


def _main_location() -> str:
    from bot.sandbox.demo_data import SUNRISE

    return SUNRISE


def run_sandbox() -> int:
    """`python -m bot` without Lark credentials: the sandbox, until Ctrl-C."""
    from aiohttp import web

    from bot.logs import setup_logging

    host, port = listen_address()
    try:  # validate HOST, PORT and the other variables once, with placeholders for the fakes' URLs
        probe = sandbox_settings(SandboxSecrets(), lark_base="http://127.0.0.1", ghl_base="http://127.0.0.1",
                                 host=host, port=port, database=DATABASE)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    console = f"http://{url_host(probe.host)}:{probe.port}{CONSOLE_PATH}"
    setup_logging(probe.log_level)
    log.info(f"sandbox mode: {TRIGGER} is not set, so the bot runs against a built-in fake Lark and a fake GHL "
             f"with demo data (nothing leaves this machine); chat console at {console}",
             extra={"mode": "sandbox", "host": probe.host, "port": probe.port, "console": console,
                    "database": str(DATABASE)})
    from bot.sandbox.app import build_sandbox_app

    def ready(_: str) -> None:
        print(f"Sandbox console: {console}  (Ctrl-C to stop; set {TRIGGER} etc. to run for real)", flush=True)

    web.run_app(build_sandbox_app(host=probe.host, port=probe.port, database=DATABASE), host=probe.host,
                port=probe.port, print=ready, shutdown_timeout=5.0, handle_signals=True)
    return 0

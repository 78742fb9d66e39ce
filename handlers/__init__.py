"""What each command, click and event does: one module per feature, each with its own Router."""

from __future__ import annotations

from bot.registry import Router


def all_routers() -> list[Router]:
    from handlers import audit, chat_events, help

    return [help.router, chat_events.router, audit.router]

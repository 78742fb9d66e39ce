"""What each command, click and event does: one module per feature, each with its own Router."""

from __future__ import annotations

from bot.registry import Router


def all_routers() -> list[Router]:
    from handlers import audit, autotag, chat_events, connect, digest, errors, help, location, stats, tags

    return [help.router, connect.router, location.router, tags.router, stats.router, digest.router, autotag.router,
            audit.router, chat_events.router, errors.router]

"""`/help`: generated from the command registry, so it never drifts from what the bot does."""

from __future__ import annotations

from bot.context import Context
from bot.registry import Router
from cards.help import CommandLine, help_card
from cards.i18n import T
from cards.kit import Card

router = Router("help")


def build_help(ctx: Context, *, welcome: bool = False) -> Card:
    lines = [CommandLine(c.name, c.usage, c.summary) for c in ctx.services.registry.visible_commands()]
    return help_card(lines, welcome=welcome)


@router.command("help", T("Show this list of commands", "显示命令列表"), order=0)
async def help_command(ctx: Context, args: str) -> Card:
    return build_help(ctx)

"""Error cards for failures every feature shares: GHL refusals and a chat with no location chosen."""

from __future__ import annotations

from bot.context import Context
from bot.ghl.errors import GhlError, GhlNeedsReconnect
from bot.ghl.hub import NoLocation
from bot.registry import Router
from cards.connect import reconnect_card
from cards.ghl_errors import ghl_error_card
from cards.i18n import T
from cards.kit import Card
from cards.location import LocationItem, choose_location_card

router = Router("errors")


@router.error(NoLocation)
def no_location(ctx: Context, exc: NoLocation) -> Card:
    items = [LocationItem(c.location_id, c.name, c.via, c.status, False) for c in exc.choices]
    return choose_location_card(items, can_connect=ctx.services.ghl is not None and ctx.ghl.oauth is not None)


@router.error(GhlNeedsReconnect)
def needs_reconnect(ctx: Context, exc: GhlNeedsReconnect) -> Card:
    return reconnect_card(exc.location_id or "?", T("GHL no longer accepts its authorisation.",
                                                    "GHL 不再接受其授权。"))


@router.error(GhlError)
def ghl_error(ctx: Context, exc: GhlError) -> Card:
    return ghl_error_card(exc.kind, exc.location_id, exc.message, trace_id=exc.trace_id, retry=ctx.command)

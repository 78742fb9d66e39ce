"""Hourly clean-up of rows that only matter for a while: delivery dedupe keys and OAuth states."""

from __future__ import annotations

from bot.services import Services
from bot.store.leases import Lease

OAUTH_STATE_KEEP = 86400.0  # expired states stay a day, for the audit trail of refused callbacks


async def prune(svc: Services, now: float, lease: Lease) -> dict[str, int]:
    """Dedupe keys past their TTL (24 h, well beyond Lark's ~7 h of redeliveries) and old OAuth states."""
    keys = await svc.dedupe.prune(now)
    await lease.keep()
    states = await svc.ghl.states.prune(now - OAUTH_STATE_KEEP) if svc.ghl is not None else 0
    return {"dedupe_keys": keys, "oauth_states": states}

"""Tags as the bot uses them: served from the store, refreshed from GHL when stale.

A cold cache is filled before answering; a stale one answers at once and refreshes in the
background (one refresh per location at a time). Unknown ids are resolved through
`tags/details` in one batched call and added to the cache.
"""

from __future__ import annotations

import asyncio
import logging

from bot.clock import Clock
from bot.ghl.client import GhlClient
from bot.ghl.models import Tag
from bot.store.tags import CachedTag, TagStore
from bot.tasks import TaskTracker

log = logging.getLogger("bot.ghl.tags")


def _row(t: Tag) -> tuple[str, str, str | None]:
    return t.id, t.name, t.created_at.isoformat() if t.created_at else None


class TagService:
    def __init__(self, client: GhlClient, store: TagStore, tasks: TaskTracker, clock: Clock, ttl: float) -> None:
        self._client, self.store, self._tasks, self._clock, self.ttl = client, store, tasks, clock, ttl
        self._inflight: dict[str, asyncio.Task[int]] = {}

    async def refresh(self, location_id: str) -> int:
        """Fetch the full list from GHL now (joins a refresh already running for that location)."""
        task = self._inflight.get(location_id)
        if task is None:
            task = self._tasks.spawn(self._refresh(location_id), name=f"tag refresh {location_id}", awaited=True)
            self._inflight[location_id] = task
            task.add_done_callback(lambda _t: self._inflight.pop(location_id, None))
        return await asyncio.shield(task)

    async def _refresh(self, location_id: str) -> int:
        tags = await self._client.all_tags(location_id)
        return await self.store.replace(location_id, (_row(t) for t in tags))

    async def ensure(self, location_id: str) -> None:
        fetched = await self.store.fetched_at(location_id)
        if fetched is None:
            await self.refresh(location_id)
        elif self._clock.time() - fetched > self.ttl and location_id not in self._inflight:
            self._tasks.spawn(self._background(location_id), name=f"tag refresh {location_id}")

    async def _background(self, location_id: str) -> None:
        try:
            await self.refresh(location_id)
        except Exception as exc:  # the cached list keeps serving; the next request tries again
            log.warning("background tag refresh failed", extra={"location_id": location_id, "error": str(exc)})

    async def ensure_quietly(self, location_id: str) -> None:
        """`ensure` for callers whose own answer does not depend on the tags (a failure is only logged)."""
        try:
            await self.ensure(location_id)
        except Exception as exc:
            log.warning("tag refresh failed", extra={"location_id": location_id, "error": str(exc)})

    async def page(self, location_id: str, search: str | None, offset: int, limit: int) -> tuple[list[CachedTag], int]:
        await self.ensure(location_id)
        return await self.store.page(location_id, search, offset, limit)

    async def all(self, location_id: str) -> list[CachedTag]:
        await self.ensure(location_id)
        return await self.store.all(location_id)

    async def names(self, location_id: str, tag_ids: list[str]) -> dict[str, str]:
        """Names for tag ids, asking GHL (one batched call) for the ones the cache lacks."""
        known = await self.store.names(location_id, tag_ids)
        missing = [t for t in dict.fromkeys(tag_ids) if t not in known]
        if missing:
            found = await self._client.tag_details(location_id, missing)
            await self.store.add(location_id, (_row(t) for t in found))
            known.update({t.id: t.name for t in found})
        return known

"""What the engine needs for one location: its existing tags and the rules still pointing at one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.ghl.hub import GhlHub
from bot.store.autotag import Rule
from bot.tagging import KeywordRule, Suggestions, TagInfo, suggest


@dataclass(frozen=True)
class LocationTagging:
    location_id: str
    tags: list[TagInfo]
    rules: list[Rule]  # every stored rule

    @property
    def tag_ids(self) -> set[str]:
        return {t.id for t in self.tags}

    @property
    def live_rules(self) -> list[Rule]:
        """Rules whose tag still exists (the others are paused until the tag is back)."""
        ids = self.tag_ids
        return [r for r in self.rules if r.tag_id in ids]

    @property
    def dead_rules(self) -> list[Rule]:
        ids = self.tag_ids
        return [r for r in self.rules if r.tag_id not in ids]

    def suggest(self, text: str) -> Suggestions:
        return suggest(text, self.tags, [KeywordRule(r.keyword, r.tag_id) for r in self.live_rules])

    def name_of(self, tag_id: str) -> str | None:
        for t in self.tags:
            if t.id == tag_id:
                return t.name
        return None


async def location_tagging(hub: GhlHub, location_id: str, rules: Sequence[Rule], *,
                           fresh: bool = False) -> LocationTagging:
    """Tags from the cache (refreshed in the background when stale); `fresh` re-reads GHL's list
    first (the poller does, so rules are re-validated and no deleted tag is written)."""
    if fresh:
        await hub.tags.refresh(location_id)
        cached = await hub.tags.store.all(location_id)
    else:
        cached = await hub.tags.all(location_id)
    return LocationTagging(location_id, [TagInfo(t.id, t.name) for t in cached], list(rules))

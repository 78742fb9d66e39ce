"""GHL → Lark: new published posts of a location, tagged (optionally) and announced.

`poll_location(services, location_id, now)` is one run for one location (the scheduler calls it
every few minutes per location; GHL has no Social Planner webhooks):

1. nothing to do unless a chat bound to the location has auto-tagging on (the cursor still
   moves, so turning it on later does not replay old posts);
2. list posts with `type: "published"` over [cursor − OVERLAP, now] (first run: the last
   `FIRST_LOOKBACK_S`), paging; which date GHL filters on is undocumented, hence the overlap;
3. skip posts in `seen_posts`; for a post without tags compute suggestions (existing tags,
   hashtags, rules whose tag still exists); when a subscribed chat turned write-back on,
   re-read the post and PUT the full tag array (existing ∪ new) with its `type`;
4. remember each handled post in `seen_posts` right after handling it (never edited twice),
   announce the batch in every subscribed chat (a Lark `uuid` per chat and batch), audit
   everything, then advance the cursor (only when the whole window was read).

A GHL outage raises (the cursor stays, the next run retries the window); a refused edit is
reported on the card and in the audit log and not retried.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.autotag.locks import lock_for
from bot.autotag.suggest import LocationTagging, location_tagging
from bot.ghl.errors import GhlBadRequest, GhlError, GhlForbidden
from bot.ghl.hub import GhlHub
from bot.ghl.models import Post
from bot.services import Services
from bot.store.autotag import AutotagStore, ChatAutotag, PollStore
from bot.store.leases import Lease
from bot.tagging import Suggestions
from cards.autotag import (
    AnnouncedPost,
    AnnounceOutcome,
    ReasonView,
    RuleView,
    TagView,
    announce_card,
    excerpt,
    rules_missing_card,
)

log = logging.getLogger("bot.autotag.poll")

OVERLAP_S = 30 * 60
FIRST_LOOKBACK_S = 60 * 60
PAGE_SIZE = 50
MAX_PAGES = 20
SEEN_TTL_S = 30 * 86400
AUDIT = "tagging"


@dataclass
class _Handled:
    post: Post
    suggestions: Suggestions | None
    tags_after: list[str]
    outcome: AnnounceOutcome
    error: str | None = None
    added: list[str] = field(default_factory=list)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _when(post: Post) -> str | None:
    when = post.effective_date
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if when else None


async def _published(hub: GhlHub, location_id: str, since: float, now: float) -> tuple[list[Post], bool]:
    """Every published post in the window (deduped by id) and whether the window was read fully."""
    posts: dict[str, Post] = {}
    for page in range(MAX_PAGES):
        batch = await hub.client.list_posts(location_id, from_date=_dt(since), to_date=_dt(now), type="published",
                                            skip=page * PAGE_SIZE, limit=PAGE_SIZE)
        for p in batch.posts:
            posts.setdefault(p.id, p)
        if len(batch.posts) < PAGE_SIZE:
            return list(posts.values()), True
    log.warning("post poll: window has more than %d posts", MAX_PAGES * PAGE_SIZE, extra={"location_id": location_id})
    return list(posts.values()), False


async def _subscribers(services: Services, store: AutotagStore, location_id: str) -> list[ChatAutotag]:
    chats = await services.chats.chats_for_location(location_id)
    return [s for s in await store.many(chats) if s.enabled]


async def _check_rules(services: Services, store: AutotagStore, tagging: LocationTagging,
                       subs: list[ChatAutotag], now: float) -> None:
    """Tell the chats, once, that a rule's tag disappeared; resume rules whose tag is back."""
    newly_dead = [r for r in tagging.dead_rules if r.missing_since is None]
    for r in tagging.live_rules:
        if r.missing_since is not None:
            await store.set_rule_missing(r.location_id, r.keyword, None)
    if not newly_dead:
        return
    for r in newly_dead:
        await store.set_rule_missing(r.location_id, r.keyword, now)
    views = [RuleView(r.keyword, r.tag_name, True) for r in newly_dead]
    digest = hashlib.sha256("|".join(sorted(r.keyword for r in newly_dead)).encode()).hexdigest()[:16]
    for s in subs:
        await _send(services, s.chat_id, rules_missing_card(tagging.location_id, views),
                    uuid=_uuid("rm", s.chat_id, tagging.location_id, digest, str(int(now))),
                    location_id=tagging.location_id, what="rules paused",
                    detail={"keywords": [r.keyword for r in newly_dead]})


def _uuid(prefix: str, *parts: str) -> str:
    return f"{prefix}-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:40]


async def _send(services: Services, chat_id: str, card: dict[str, Any], *, uuid: str, location_id: str, what: str,
                detail: dict[str, Any]) -> None:
    try:
        message_id = await services.lark.send_card(chat_id, card, uuid=uuid)
    except Exception as exc:  # one chat failing must not stop the others
        log.warning("post poll: could not announce", extra={"chat_id": chat_id, "error": type(exc).__name__})
        await services.audit.record(kind=AUDIT, action=what, outcome="error", chat_id=chat_id,
                                    location_id=location_id, detail={**detail, "error": type(exc).__name__})
        return
    await services.audit.record(kind=AUDIT, action=what, outcome="ok", chat_id=chat_id, location_id=location_id,
                                detail={**detail, "message_id": message_id})


async def _write_tags(services: Services, hub: GhlHub, location_id: str, post: Post, new: list[str],
                      user_id: str | None) -> tuple[list[str], bool]:
    """PUT existing ∪ new on a freshly re-read post; (tags now, whether a PUT was sent)."""
    fresh = await hub.client.get_post(location_id, post.id)
    union = list(dict.fromkeys([*fresh.tags, *new]))
    if set(union) == set(fresh.tags):  # nothing to add (e.g. a run interrupted after its PUT)
        return fresh.tags, False
    body: dict[str, Any] = {"type": fresh.type or post.type or "post", "tags": union}
    if hub.client.version == "v3":  # the v3 body requires these too (reference §4.9)
        body["accountIds"] = fresh.account_ids or post.account_ids
        if user_id or fresh.created_by:
            body["userId"] = user_id or fresh.created_by
    await hub.client.edit_post(location_id, post.id, body)
    return union, True


async def _handle(services: Services, hub: GhlHub, tagging: LocationTagging, post: Post, *, writeback: bool,
                  audit_chat: str, user_id: str | None) -> _Handled:
    loc = tagging.location_id
    if post.tags:
        return _Handled(post, None, post.tags, "had_tags")
    found = tagging.suggest(post.summary)
    new = found.tag_ids
    await services.audit.record(kind=AUDIT, action="suggest", outcome="ok" if new else "none", chat_id=audit_chat,
                                location_id=loc, detail={"post_id": post.id, "tags": new, "source": "poll",
                                                         "missing": [m.hashtag for m in found.missing]})
    if not new:
        return _Handled(post, found, [], "nothing")
    if not writeback:
        return _Handled(post, found, [], "suggested")
    try:
        after, sent = await _write_tags(services, hub, loc, post, new, user_id)
    except (GhlBadRequest, GhlForbidden) as exc:  # refused: report, do not retry this post
        await services.audit.record(kind=AUDIT, action="post.tag", outcome="error", chat_id=audit_chat,
                                    location_id=loc, detail={"post_id": post.id, "tags": new, "error": exc.message})
        return _Handled(post, found, [], "failed", exc.message)
    await services.audit.record(kind=AUDIT, action="post.tag", outcome="ok" if sent else "unchanged",
                                chat_id=audit_chat, location_id=loc,
                                detail={"post_id": post.id, "added": new, "tags": after})
    return _Handled(post, found, after, "written", added=new)


def _view(h: _Handled, names: dict[str, str]) -> AnnouncedPost:
    added: list[TagView] = []
    missing: list[str] = []
    if h.suggestions is not None:
        added = [TagView(s.tag_id, s.tag_name, tuple(ReasonView(r.kind, r.matched, r.keyword) for r in s.reasons))
                 for s in h.suggestions.tags]
        missing = [m.hashtag for m in h.suggestions.missing]
    return AnnouncedPost(post_id=h.post.id, excerpt=excerpt(h.post.summary, 200), platform=h.post.platform,
                         when=_when(h.post), tags=[names.get(t, t) for t in h.tags_after], added=added,
                         missing=missing, outcome=h.outcome, error=h.error)


async def poll_location(services: Services, location_id: str, now: float) -> int:
    """One polling run for one location; returns how many posts were newly handled."""
    hub = services.ghl
    if hub is None:
        return 0
    store = AutotagStore(services.db, services.clock.time)
    polls = PollStore(services.db, services.clock.time)
    async with lock_for(services, "poll", location_id):
        subs = await _subscribers(services, store, location_id)
        if not subs:
            await polls.set_cursor(location_id, now)
            return 0
        cursor = await polls.cursor(location_id)
        since = (now - FIRST_LOOKBACK_S if cursor is None else min(cursor, now)) - OVERLAP_S
        posts, complete = await _published(hub, location_id, since, now)
        fresh_ids = set(await polls.unseen(location_id, [p.id for p in posts]))
        epoch = datetime.fromtimestamp(0, UTC)
        fresh = sorted((p for p in posts if p.id in fresh_ids), key=lambda p: (p.effective_date or epoch, p.id))
        handled = await _handle_all(services, hub, store, polls, location_id, subs, fresh, now) if fresh else []
        if complete:
            await polls.set_cursor(location_id, now)
        await polls.prune(now - SEEN_TTL_S)
        return len(handled)


async def _handle_all(services: Services, hub: GhlHub, store: AutotagStore, polls: PollStore, location_id: str,
                      subs: list[ChatAutotag], fresh: list[Post], now: float) -> list[_Handled]:
    # A fresh tag list: rules are re-validated and a tag deleted in GHL is never suggested or written.
    tagging = await location_tagging(hub, location_id, await store.rules(location_id), fresh=True)
    await _check_rules(services, store, tagging, subs, now)
    writers = [s for s in subs if s.writeback]
    audit_chat = (writers or subs)[0].chat_id  # the chat whose setting caused the write (or would have)
    user_id = next((s.ghl_user_id for s in writers if s.ghl_user_id), None)
    handled: list[_Handled] = []
    try:
        for post in fresh:
            h = await _handle(services, hub, tagging, post, writeback=bool(writers), audit_chat=audit_chat,
                              user_id=user_id)
            await polls.mark_seen(location_id, post.id, h.tags_after)  # never handled (or edited) twice
            handled.append(h)
    finally:  # what was handled is announced even if a later post hit a GHL outage
        if handled:
            await _announce(services, hub, location_id, subs, handled)
    return handled


async def _announce(services: Services, hub: GhlHub, location_id: str, subs: list[ChatAutotag],
                    handled: list[_Handled]) -> None:
    ids = sorted({t for h in handled for t in h.tags_after})
    try:
        names = await hub.tags.names(location_id, ids) if ids else {}
    except GhlError:
        names = {}
    views = [_view(h, names) for h in handled]
    batch = ",".join(sorted(h.post.id for h in handled))
    for s in subs:
        await _send(services, s.chat_id, announce_card(location_id, views),
                    uuid=_uuid("ap", s.chat_id, location_id, batch), location_id=location_id, what="announce",
                    detail={"posts": [h.post.id for h in handled],
                            "tags": {h.post.id: h.tags_after for h in handled}})


POLL_INTERVAL_S = 600.0  # GHL's reference recipe: every 5–15 min per location
POLL_LEASE_TTL_S = 300.0


class PollJob:
    """The scheduler's `run(now, lease)`: every reachable location, one after another.

    A location that fails (GHL down, token revoked) is logged and skipped; its cursor stays, so
    the next run covers the window again. The lease is renewed between locations.
    """

    def __init__(self, services: Services) -> None:
        self.services = services

    async def run(self, now: float, lease: Lease) -> dict[str, int]:
        hub = self.services.ghl
        if hub is None or not hub.configured:
            return {}
        handled: dict[str, int] = {}
        for location_id in await hub.all_locations():
            await lease.keep()
            try:
                handled[location_id] = await poll_location(self.services, location_id, now)
            except Exception as exc:
                log.warning("post poll failed", extra={"location_id": location_id, "error": str(exc)[:300]})
                handled[location_id] = -1
        return handled

"""Lark → GHL: create a Social Planner post from a chat message, exactly once per message.

POST …/posts is not idempotent, so the message id is the idempotency key:

1. under an in-process lock per key (double clicks in one process queue up), read `created_posts`;
2. `created` → answer "already created" with the post id; nothing is sent to GHL;
3. `pending` (we crashed, or another instance is at it) or `unknown` (GHL's answer was lost) →
   look the post up in GHL (posts/list over a window around the attempt, matched on summary,
   tags and accounts) and adopt it if found; a `pending` row younger than `PENDING_GRACE_S`
   that GHL does not show yet answers "still in progress" instead of creating a second post;
4. otherwise record the request with status `pending` (durable) **before** calling GHL, then
   record `created` with the post id, `failed` when GHL refused (nothing created: retry is
   safe) or `unknown` when the answer was lost.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.autotag.locks import lock_for
from bot.ghl.client import GhlClient
from bot.ghl.errors import GhlError, GhlUnavailable
from bot.ghl.models import Post
from bot.services import Services
from bot.store.autotag import CREATED, FAILED, PENDING, UNKNOWN, ChatAutotag, PostingStore

log = logging.getLogger("bot.autotag.posting")

PENDING_GRACE_S = 120.0
LOOKUP_BEFORE_S = 600.0
LOOKUP_AFTER_S = 3600.0
LOOKUP_PAGES = 4
LOOKUP_PAGE_SIZE = 50
MIN_LEAD_S = 60.0
MAX_SCHEDULE_DAYS = 365

ScheduleProblem = Literal["empty", "format", "zone", "past", "far"]


class ScheduleError(ValueError):
    def __init__(self, problem: ScheduleProblem) -> None:
        super().__init__(problem)
        self.problem: ScheduleProblem = problem


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_naive_or_aware(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    for fmt in ("%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M:%S %z", "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M %z"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ScheduleError("format")


def parse_schedule(raw: str, *, tz_name: str, now: datetime) -> datetime:
    """`2026-03-01 09:30` (in `tz_name`), optionally with an offset (`+08:00`, `+0800`, `Z`) or an
    IANA zone (`2026-03-01 09:30 Asia/Shanghai`) → an aware UTC datetime at least a minute ahead."""
    text = " ".join(raw.split())
    if not text:
        raise ScheduleError("empty")
    zone_name = tz_name
    head, _, tail = text.rpartition(" ")
    if head and ("/" in tail or tail.upper() == "UTC"):
        zone_name, text = ("UTC" if tail.upper() == "UTC" else tail), head
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("zone") from None
    if len(text) <= 10:  # a date without a time
        raise ScheduleError("format")
    when = _parse_naive_or_aware(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    try:
        when = when.astimezone(UTC)
    except OverflowError:  # e.g. year 1 with a positive offset
        raise ScheduleError("format") from None
    if when < now + timedelta(seconds=MIN_LEAD_S):
        raise ScheduleError("past")
    if when > now + timedelta(days=MAX_SCHEDULE_DAYS):
        raise ScheduleError("far")
    return when


@dataclass(frozen=True)
class PostRequest:
    """One create-post call (CreatePostDTO, Version 2021-07-28)."""

    account_ids: tuple[str, ...]
    tag_ids: tuple[str, ...]
    summary: str
    user_id: str
    schedule: datetime | None = None  # None: a draft

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "accountIds": list(self.account_ids), "type": "post", "userId": self.user_id,
            "summary": self.summary, "media": [], "tags": list(self.tag_ids),
        }
        if self.schedule is None:
            body["status"] = "draft"
        else:
            body["scheduleDate"] = _iso(self.schedule)
        return body


@dataclass(frozen=True)
class CreateOutcome:
    status: Literal["created", "already", "recovered", "in_progress"]
    post_id: str | None
    body: dict[str, Any]  # the request GHL got (for "already"/"recovered": the one recorded)


def posting_user_from(chat: ChatAutotag, installation_user: str | None) -> str | None:
    """The GHL user a post is created as: the chat's `/autotag user`, else the OAuth installer."""
    return chat.ghl_user_id or installation_user


async def posting_user(services: Services, chat: ChatAutotag, location_id: str) -> str | None:
    hub = services.ghl
    installer = None
    if hub is not None and hub.installations is not None:
        inst = await hub.installations.get(location_id)
        installer = inst.user_id if inst is not None else None
    return posting_user_from(chat, installer)


def same_post(post: Post, body: dict[str, Any], *, not_before: float) -> bool:
    """Is `post` the one `body` created? GHL may trim the summary to a platform's limit."""
    if (post.status or "") == "deleted":
        return False
    want, got = str(body.get("summary", "")).strip(), post.summary.strip()
    if not (got == want or (got and want.startswith(got))):
        return False
    if sorted(post.tags) != sorted(body.get("tags") or []):
        return False
    accounts = set(body.get("accountIds") or [])
    theirs = set(post.account_ids) | ({post.account_id} if post.account_id else set())
    if accounts and not accounts & theirs:
        return False
    return post.created_at is None or post.created_at.timestamp() >= not_before


async def find_created(client: GhlClient, location_id: str, body: dict[str, Any], *, since: float,
                       now: float) -> Post | None:
    """The post an earlier attempt created, if GHL lists it (newest match wins)."""
    start = since - LOOKUP_BEFORE_S
    until = now
    if body.get("scheduleDate"):
        with contextlib.suppress(ValueError):
            until = max(now, datetime.fromisoformat(str(body["scheduleDate"]).replace("Z", "+00:00")).timestamp())
    frm = datetime.fromtimestamp(start, UTC)
    to = datetime.fromtimestamp(until + LOOKUP_AFTER_S, UTC)
    found: list[Post] = []
    for page in range(LOOKUP_PAGES):
        batch = await client.list_posts(location_id, from_date=frm, to_date=to, type="all",
                                        skip=page * LOOKUP_PAGE_SIZE, limit=LOOKUP_PAGE_SIZE)
        found += [p for p in batch.posts if same_post(p, body, not_before=start)]
        if len(batch.posts) < LOOKUP_PAGE_SIZE:
            break
    if not found:
        return None
    epoch = datetime.fromtimestamp(0, UTC)
    return max(found, key=lambda p: (p.created_at or epoch, p.id))


async def create_once(services: Services, *, key: str, location_id: str, chat_id: str | None,
                      request: PostRequest) -> CreateOutcome:
    """Create the post for `key` unless it exists; GHL errors propagate after being recorded."""
    hub = services.ghl
    if hub is None:
        raise RuntimeError("GHL is not wired into this app")
    store = PostingStore(services.db, services.clock.time)
    async with lock_for(services, "post", key):
        row = await store.created(key)
        if row is not None and row.status == CREATED and row.post_id:
            return CreateOutcome("already", row.post_id, row.request)
        if row is not None and row.status in (PENDING, UNKNOWN):
            now = services.clock.time()
            post = await find_created(hub.client, row.location_id, row.request, since=row.created_at, now=now)
            if post is not None:
                await store.complete(key, post.id)
                log.info("adopted a post created by an earlier attempt", extra={"location_id": row.location_id,
                                                                                "post_id": post.id})
                return CreateOutcome("recovered", post.id, row.request)
            if row.status == PENDING and now - row.updated_at < PENDING_GRACE_S:
                return CreateOutcome("in_progress", None, row.request)
        body = request.body()
        await store.begin(key, location_id, chat_id, body)
        try:
            post = await hub.client.create_post(location_id, body)
        except GhlUnavailable as exc:
            await store.mark(key, UNKNOWN, exc.message)
            raise
        except GhlError as exc:  # GHL refused (4xx, 429, auth): nothing was created
            await store.mark(key, FAILED, exc.message)
            raise
        except BaseException as exc:
            await store.mark(key, UNKNOWN, type(exc).__name__)
            raise
        await store.complete(key, post.id)
        return CreateOutcome("created", post.id, body)

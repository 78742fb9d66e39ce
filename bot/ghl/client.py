"""GHL Social Planner client: typed methods over one shared httpx client.

Every request carries `Authorization: Bearer`, `Version` and `Accept: application/json`, waits
for the location's rate limiter, and is retried a bounded number of times on 429 / 5xx /
network errors (jittered exponential backoff, honouring `Retry-After` and GHL's
`X-RateLimit-*` headers). A 429, or `X-RateLimit-Remaining: 0`, pauses every request for that
location (Retry-After, else `X-RateLimit-Interval-Milliseconds`). A 401 triggers exactly one
token refresh and one retry. Query and body values are typed as the 2021-07-28 spec says:
`skip`/`limit` & co. are strings.
Every wait goes through `clock.sleep`, so tests with a fake clock run instantly.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from bot.clock import Clock
from bot.ghl.auth import TokenProvider
from bot.ghl.errors import (
    GhlAuthError,
    GhlError,
    GhlRateLimited,
    GhlUnavailable,
    error_from_response,
    parse_retry_after,
)
from bot.ghl.models import (
    REPORTING_PLATFORMS,
    Accounts,
    Post,
    PostsPage,
    Statistics,
    Tag,
    TagsPage,
)
from bot.ratelimit import KeyedWindows

__all__ = ["DEFAULT_API_BASE", "DEFAULT_VERSION", "GhlClient", "Limiter"]

log = logging.getLogger("bot.ghl")

DEFAULT_API_BASE = "https://services.leadconnectorhq.com"
DEFAULT_VERSION = "2021-07-28"
PREFIX = "/social-media-posting"
MAX_PROFILE_IDS = 100
TAG_DETAILS_BATCH = 100
TAG_PAGE_CONCURRENCY = 4
MAX_TAG_PAGES = 1000
DEFAULT_RATE_INTERVAL_S = 10.0
POST_TYPES = ("post", "story", "reel")

M = TypeVar("M", bound=BaseModel)


class Limiter(Protocol):
    """What the client needs from a rate limiter (KeyedWindows fits)."""

    async def acquire(self, key: str) -> None: ...


def _seg(value: str) -> str:
    """One path segment, escaped so an id can never change the path."""
    return quote(value, safe="")


def _iso(when: datetime) -> str:
    """2024-01-22T05:32:49.463Z (naive datetimes are taken as UTC)."""
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in ids if i))


class GhlClient:
    """Social Planner endpoints for many locations; one instance per process."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_base: str = DEFAULT_API_BASE,
        version: str = DEFAULT_VERSION,
        tokens: TokenProvider,
        clock: Clock,
        limiter: Limiter | None = None,
        max_attempts: int = 4,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_retry_wait: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._base = api_base.rstrip("/")
        self.version = version
        self._tokens = tokens
        self._clock = clock
        # GHL allows 100 requests per 10 s per location; a token bucket would let a burst plus its
        # refill through (up to ~180 in one window), so the ceiling is an exact sliding window.
        self._limiter: Limiter = limiter or KeyedWindows(90, 10.0)
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_wait = max_retry_wait
        self._rng = rng or random.Random()
        self._paused_until: dict[str, float] = {}  # location → clock.monotonic() deadline

    # ----- tags --------------------------------------------------------------------------

    async def list_tags(
        self, location_id: str, *, search: str | None = None, skip: int = 0, limit: int = 100
    ) -> TagsPage:
        params = {"skip": str(skip), "limit": str(limit)}
        if search:
            params["searchText"] = search
        resp = await self._call("GET", location_id, f"{PREFIX}/{_seg(location_id)}/tags", params=params)
        return self._parse(resp, TagsPage, self._results(resp))

    async def all_tags(self, location_id: str, search: str | None = None, page_size: int = 100) -> list[Tag]:
        """Every live tag (drops `deleted`), paging with string `skip`/`limit`.

        Whether `count` is the total or the page size is undocumented, so it is trusted as a total
        only when it exceeds the page it came with; then the remaining pages are fetched a few at a
        time concurrently. Otherwise pages are read one by one until an empty or repeated page, or a
        short page (a server that caps `limit` below `page_size` answers short pages before the end).
        """
        seen: set[str] = set()
        tags: list[Tag] = []

        def take(page: TagsPage) -> int:
            fresh = [t for t in page.tags if t.id not in seen]
            seen.update(t.id for t in fresh)
            tags.extend(t for t in fresh if not t.deleted)
            return len(fresh)

        first = await self.list_tags(location_id, search=search, skip=0, limit=page_size)
        take(first)
        skip = len(first.tags)
        total = first.count if first.count is not None and first.count > len(first.tags) else None
        if total is not None and len(first.tags) == page_size:
            skips = list(range(skip, min(total, MAX_TAG_PAGES * page_size), page_size))
            gate = asyncio.Semaphore(TAG_PAGE_CONCURRENCY)

            async def fetch(at: int) -> TagsPage:
                async with gate:
                    return await self.list_tags(location_id, search=search, skip=at, limit=page_size)

            for page in await asyncio.gather(*(fetch(at) for at in skips)):
                take(page)
                skip += len(page.tags)
            return tags
        pages = 1
        while first.tags and self._more_tags(first, page_size, skip) and pages < MAX_TAG_PAGES:
            first = await self.list_tags(location_id, search=search, skip=skip, limit=page_size)
            pages += 1
            if not take(first):
                return tags
            skip += len(first.tags)
        if pages >= MAX_TAG_PAGES:
            log.warning("GHL tags for %s: stopped after %d pages", location_id, MAX_TAG_PAGES)
        return tags

    @staticmethod
    def _more_tags(page: TagsPage, page_size: int, fetched: int) -> bool:
        if len(page.tags) >= page_size:
            return True
        return page.count is not None and page.count > fetched

    async def tag_details(self, location_id: str, tag_ids: Iterable[str]) -> list[Tag]:
        """Tags by id (POST …/tags/details), 100 ids per call; unknown ids are simply absent."""
        ids = _dedupe(tag_ids)
        path = f"{PREFIX}/{_seg(location_id)}/tags/details"
        found: list[Tag] = []
        for start in range(0, len(ids), TAG_DETAILS_BATCH):
            batch = ids[start : start + TAG_DETAILS_BATCH]
            resp = await self._call("POST", location_id, path, json={"tagIds": batch})
            found.extend(self._parse(resp, TagsPage, self._results(resp)).tags)
        return found

    # ----- accounts & statistics ---------------------------------------------------------

    async def accounts(self, location_id: str) -> Accounts:
        resp = await self._call("GET", location_id, f"{PREFIX}/{_seg(location_id)}/accounts")
        return self._parse(resp, Accounts, self._results(resp))

    async def statistics(
        self,
        location_id: str,
        profile_ids: Sequence[str],
        platforms: Sequence[str] | None = None,
    ) -> Statistics:
        """The rolling 7-day analytics for up to 100 accounts' `profileId`s (200 or 201)."""
        ids = _dedupe(profile_ids)
        if not ids:
            raise ValueError("statistics needs at least one profileId")
        if len(ids) > MAX_PROFILE_IDS:
            log.warning(
                "GHL statistics for %s: %d profileIds, sending the first %d",
                location_id,
                len(ids),
                MAX_PROFILE_IDS,
            )
            ids = ids[:MAX_PROFILE_IDS]
        body: dict[str, Any] = {"profileIds": ids}
        if platforms:
            unknown = sorted(set(platforms) - set(REPORTING_PLATFORMS))
            if unknown:
                raise ValueError(f"platforms without statistics: {', '.join(unknown)}")
            body["platforms"] = list(dict.fromkeys(platforms))
        resp = await self._call(
            "POST",
            location_id,
            f"{PREFIX}/statistics",
            params={"locationId": location_id},
            json=body,
        )
        return self._parse(resp, Statistics, self._results(resp))

    # ----- posts -------------------------------------------------------------------------

    async def list_posts(
        self,
        location_id: str,
        *,
        from_date: datetime,
        to_date: datetime,
        type: str = "all",
        skip: int = 0,
        limit: int = 50,
        include_users: bool = False,
        accounts: Sequence[str] | None = None,
        post_type: str | None = None,
    ) -> PostsPage:
        body: dict[str, str] = {
            "type": type,
            "skip": str(skip),
            "limit": str(limit),
            "fromDate": _iso(from_date),
            "toDate": _iso(to_date),
            "includeUsers": "true" if include_users else "false",
        }
        if accounts:
            body["accounts"] = ",".join(accounts)
        if post_type:
            if post_type not in POST_TYPES:
                raise ValueError(f"post_type must be one of {', '.join(POST_TYPES)}")
            body["postType"] = post_type
        path = f"{PREFIX}/{_seg(location_id)}/posts/list"
        resp = await self._call("POST", location_id, path, json=body)
        return self._parse(resp, PostsPage, self._results(resp))

    async def get_post(self, location_id: str, post_id: str) -> Post:
        path = f"{PREFIX}/{_seg(location_id)}/posts/{_seg(post_id)}"
        resp = await self._call("GET", location_id, path)
        return self._parse(resp, Post, self._results(resp).get("post"))

    async def create_post(self, location_id: str, body: Mapping[str, Any]) -> Post:
        """Create a post (not idempotent: 5xx and read timeouts are not retried)."""
        path = f"{PREFIX}/{_seg(location_id)}/posts"
        resp = await self._call("POST", location_id, path, json=dict(body), idempotent=False)
        return self._parse(resp, Post, self._results(resp).get("post"))

    async def edit_post(self, location_id: str, post_id: str, body: Mapping[str, Any]) -> None:
        """PUT the post; send the full desired `tags` array (ids), plus `type`."""
        path = f"{PREFIX}/{_seg(location_id)}/posts/{_seg(post_id)}"
        await self._call("PUT", location_id, path, json=dict(body))

    # ----- transport ---------------------------------------------------------------------

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Version": self.version,
            "Accept": "application/json",
        }

    async def _call(
        self,
        method: str,
        location_id: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        idempotent: bool = True,
    ) -> httpx.Response:
        token = await self._tokens.access_token(location_id)
        url = self._base + path
        failures = 0
        refreshed = False
        while True:
            await self._wait_gate(location_id)
            await self._limiter.acquire(location_id)
            try:
                resp = await self._http.request(method, url, params=params, json=json, headers=self._headers(token))
            except httpx.TransportError as exc:
                failures += 1
                down = self._transport_error(method, path, location_id, exc)
                if failures >= self._max_attempts or not self._resend_ok(exc, idempotent):
                    raise down from None
                await self._clock.sleep(self._backoff(failures))
                continue
            self._note_rate_headers(location_id, resp)
            if resp.is_success:
                return resp
            error = error_from_response(resp, location_id=location_id, now=self._clock.time())
            self._log_error(method, path, error)
            if isinstance(error, GhlAuthError) and not refreshed:
                refreshed = True
                token = await self._token_after_401(location_id, token, error)
                continue
            failures += 1
            delay = self._retry_delay(resp, error, failures, idempotent)
            if delay is None:
                raise error
            await self._clock.sleep(delay)

    async def _token_after_401(self, location_id: str, token: str, error: GhlError) -> str:
        try:
            fresh = await self._tokens.refreshed_after_401(location_id, token)
        except GhlError as exc:
            exc.trace_id = exc.trace_id or error.trace_id
            raise
        if fresh is None:
            raise error
        return fresh

    @staticmethod
    def _resend_ok(exc: httpx.TransportError, idempotent: bool) -> bool:
        """A non-idempotent request is resent only when it surely never reached GHL."""
        return idempotent or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)

    def _transport_error(self, method: str, path: str, location_id: str, exc: httpx.TransportError) -> GhlUnavailable:
        log.warning("GHL %s %s: %s", method, path, type(exc).__name__)
        return GhlUnavailable(0, f"GHL unreachable ({type(exc).__name__})", location_id=location_id)

    def _retry_delay(self, resp: httpx.Response, error: GhlError, failures: int, idempotent: bool) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if failures >= self._max_attempts:
            return None
        if isinstance(error, GhlRateLimited):
            wait = self._rate_limit_wait(resp, error)
        elif isinstance(error, GhlUnavailable) and idempotent:
            wait = self._backoff(failures)
            retry_after = parse_retry_after(resp.headers, self._clock.time())
            wait = max(wait, retry_after or 0.0)
        else:
            return None
        if wait > self._max_retry_wait:
            return None
        return wait

    def _rate_limit_wait(self, resp: httpx.Response, error: GhlRateLimited) -> float:
        """Retry-After if given, else GHL's window (X-RateLimit-Interval-Milliseconds, 10 s)."""
        if error.retry_after is not None:
            base = error.retry_after
        else:
            interval_ms = _header_float(resp.headers, "x-ratelimit-interval-milliseconds")
            base = interval_ms / 1000 if interval_ms is not None else DEFAULT_RATE_INTERVAL_S
            error.retry_after = base
        return base * (1 + 0.1 * self._rng.random())

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._backoff_cap, self._backoff_base * 2.0 ** (failures - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _note_rate_headers(self, location_id: str, resp: httpx.Response) -> None:
        """Pause this location: on a 429 for Retry-After (else GHL's interval), and for the
        interval whenever `X-RateLimit-Remaining` reaches 0."""
        interval_ms = _header_float(resp.headers, "x-ratelimit-interval-milliseconds")
        interval = interval_ms / 1000 if interval_ms is not None else DEFAULT_RATE_INTERVAL_S
        if resp.status_code == 429:
            retry_after = parse_retry_after(resp.headers, self._clock.time())
            wait = retry_after if retry_after is not None else interval
            self._pause(location_id, min(wait, self._max_retry_wait))
            return
        remaining = _header_float(resp.headers, "x-ratelimit-remaining")
        if remaining is not None and remaining <= 0:
            self._pause(location_id, interval)

    def _pause(self, location_id: str, seconds: float) -> None:
        """Hold every request for this location for `seconds` (on our Clock, see `_wait_gate`)."""
        until = self._clock.monotonic() + seconds
        if until > self._paused_until.get(location_id, 0.0):
            self._paused_until[location_id] = until
            log.info("GHL rate limit: pausing location %s for %.1f s", location_id, seconds)

    def paused_for(self, location_id: str) -> float:
        """Seconds this location's requests are still held back (0 when not paused)."""
        return max(0.0, self._paused_until.get(location_id, 0.0) - self._clock.monotonic())

    async def _wait_gate(self, location_id: str) -> None:
        """The per-location pause, waited with `clock.sleep`.

        Kept here rather than in the limiter's own pause, which sleeps on the event loop's real
        clock and would make FakeClock tests wait for real.
        """
        while (wait := self.paused_for(location_id)) > 0:
            await self._clock.sleep(wait)
        self._paused_until.pop(location_id, None)

    @staticmethod
    def _log_error(method: str, path: str, error: GhlError) -> None:
        log.warning(
            "GHL %s %s -> %s %s: %s (traceId %s)",
            method,
            path,
            error.status,
            error.kind,
            error.message,
            error.trace_id,
        )

    # ----- bodies ------------------------------------------------------------------------

    @staticmethod
    def _results(resp: httpx.Response) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            raise GhlUnavailable(resp.status_code, "GHL answered a non-JSON body") from None
        results = body.get("results") if isinstance(body, dict) else None
        return results if isinstance(results, dict) else {}

    @staticmethod
    def _parse(resp: httpx.Response, model: type[M], data: Any) -> M:
        if data is None:
            raise GhlUnavailable(resp.status_code, f"GHL answered without {model.__name__} data")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise GhlUnavailable(
                resp.status_code, f"unexpected {model.__name__} shape: {exc.error_count()} errors"
            ) from None

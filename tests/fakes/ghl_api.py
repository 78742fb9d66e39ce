"""A fake GHL (LeadConnector) API on 127.0.0.1: Social Planner + OAuth token endpoint.

Usage::

    async with FakeGhl(clock=clock) as ghl:
        loc = ghl.add_location("loc_1")
        ghl.add_tags(loc, ["Promo", "Launch"])
        token = ghl.add_private_token(loc)
        client = GhlClient(http, api_base=ghl.base_url, ...)
        ...
        assert ghl.invalid_requests == []

Every request is validated against the official OpenAPI files in ``tests/specs/ghl``
(``apps/social-media-posting.json``; ``apps/oauth.json`` for ``/oauth/*``) with openapi-core;
a request that fails gets 422 ``UnprocessableDTO`` and is recorded in ``invalid_requests``.
Then, in order: injected faults (``fail_next``), the bearer (401 ``UnauthorizedDTO``), the
token's location (403) and scope (401 "not authorized for this scope"), the optional rate
limiter (100 / 10 s per location, 429), and finally the endpoint.

Spec pre-processing (in memory; the files stay byte-identical to upstream):

* NestJS emits enums as ``{"type": "object", "example": "post"}`` (``CreatePostDTO.type``,
  ``status``, ``postType`` …): such properties are treated as strings, or a valid create-post
  body (``"type": "post"``) would fail.
* The shared error schemas (``../common/common-schemas.json``) are inlined so validation never
  touches the disk after start-up; the upstream files do not pass openapi-spec-validator
  (``http`` schemes with ``in``/``name``, a path parameter without a declaration), so the
  spec self-check is skipped.
* Security in the spec only says "a bearer header exists"; the fake checks real tokens
  itself, so validation runs with the header present and bearer problems answer 401.

Rate-limit headers are on every response. Their counting window runs on the injected clock;
when ``enforce_rate_limits`` is False the reported ``X-RateLimit-Remaining`` never drops below 1,
so an unenforced fake never makes a well-behaved client back off.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict, MultiDict

try:  # openapi-core is a test extra: without it (e.g. the sandbox) requests are served unvalidated
    from openapi_core import Config, OpenAPI
    from openapi_core.datatypes import RequestParameters

    VALIDATES = True
except ImportError:  # pragma: no cover - depends on the install
    VALIDATES = False

from bot.clock import Clock, SystemClock
from tests.fakes.loopback import LoopbackServer

__all__ = [
    "API_VERSION",
    "Call",
    "FakeGhl",
    "FakeLocation",
    "Fault",
    "InvalidRequest",
    "build_statistics",
    "object_id",
]

SPEC_DIR = Path(__file__).resolve().parents[1] / "specs" / "ghl"
SOCIAL_SPEC = SPEC_DIR / "apps" / "social-media-posting.json"
OAUTH_SPEC = SPEC_DIR / "apps" / "oauth.json"
COMMON_REF = "../common/common-schemas.json#/components/schemas/"
SERVER_URL = "https://services.leadconnectorhq.com"
API_VERSION = "2021-07-28"
PREFIX = "/social-media-posting"
TOKEN_PATH = "/oauth/token"

DEFAULT_EXPIRES_IN = 86399
RATE_MAX = 100
RATE_INTERVAL_MS = 10_000
DAILY_LIMIT = 200_000
DEFAULT_SCOPES = frozenset(
    {
        "socialplanner/tag.readonly",
        "socialplanner/statistics.readonly",
        "socialplanner/account.readonly",
        "socialplanner/post.readonly",
        "socialplanner/post.write",
    }
)
POST_STATUSES = {"in_progress", "draft", "failed", "published", "scheduled", "in_review", "deleted"}
LIST_TYPES = POST_STATUSES | {"recent", "all"}
OBJECT_ID_ERROR = "Argument passed in must be a single String of 12 bytes or a string of 24 hex characters"
INVALID_TOKEN = "Invalid token: access token is invalid"
SCOPE_ERROR = "The token is not authorized for this scope."

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FirstUseHook = Callable[[str, str], Awaitable[None]]


# ----- spec loading (once per process) ------------------------------------------------------

_SPEC_CACHE: dict[str, OpenAPI] = {}
# Validation depends only on method, path, query, Version, content type and body: memoise it.
_VALIDATION_MEMO: dict[tuple[Any, ...], tuple[str, ...]] = {}
_VALIDATION_MEMO_MAX = 4096


def _enum_objects_as_strings(node: Any) -> None:
    """`{"type": "object", "example": "post"}` without properties → `{"type": "string"}`."""
    if isinstance(node, dict):
        if node.get("type") == "object" and isinstance(node.get("example"), str) and "properties" not in node:
            node["type"] = "string"
        for value in node.values():
            _enum_objects_as_strings(value)
    elif isinstance(node, list):
        for value in node:
            _enum_objects_as_strings(value)


def _inline_common_refs(node: Any) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(COMMON_REF):
            node["$ref"] = "#/components/schemas/" + ref[len(COMMON_REF) :]
        for value in node.values():
            _inline_common_refs(value)
    elif isinstance(node, list):
        for value in node:
            _inline_common_refs(value)


def _load_spec(path: Path) -> OpenAPI:
    data = json.loads(path.read_text("utf-8"))
    common = json.loads((path.parent.parent / "common" / "common-schemas.json").read_text("utf-8"))
    schemas = data.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in common["components"]["schemas"].items():
        schemas.setdefault(name, schema)
    _inline_common_refs(data)
    _enum_objects_as_strings(data)
    return OpenAPI.from_dict(data, config=Config(spec_validator_cls=None))


def _load_all() -> dict[str, OpenAPI]:
    return {"social": _load_spec(SOCIAL_SPEC), "oauth": _load_spec(OAUTH_SPEC)}


async def load_specs() -> dict[str, OpenAPI]:
    """The two OpenAPI objects, parsed once per process (off the event loop); none without openapi-core."""
    if VALIDATES and not _SPEC_CACHE:
        _SPEC_CACHE.update(await asyncio.to_thread(_load_all))
    return _SPEC_CACHE


@dataclass
class _SpecRequest:
    """openapi-core's Request protocol over an already-read aiohttp request."""

    method: str
    path: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters
    host_url: str = SERVER_URL


def _spec_messages(errors: Iterable[Exception]) -> list[str]:
    """openapi-core errors → class-validator-like strings for the 422 `message` array."""
    out: list[str] = []
    errors = list(errors)
    if not errors:
        return out
    for err in errors:
        schema_errors = getattr(err.__cause__, "schema_errors", None) or ()
        details = []
        for se in schema_errors:
            where = ".".join(str(p) for p in se.path)
            details.append(f"{where}: {se.message}" if where else se.message)
        if details and "body" in str(err).lower():
            out.extend(details)
        elif details:
            out.extend(f"{err}: {d}" for d in details)
        else:
            out.append(str(err))
    return out or ["Unprocessable Entity"]


# ----- records ----------------------------------------------------------------------------


@dataclass
class Call:
    """One request the fake received and the status it answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, form dict, or None
    status: int = 0


@dataclass
class InvalidRequest:
    method: str
    path: str
    messages: list[str]


@dataclass
class Fault:
    """Answer the next `times` requests whose path contains `path_substring` with `status`."""

    path_substring: str
    status: int
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    method: str | None = None


@dataclass
class FakeLocation:
    location_id: str
    company_id: str
    user_id: str
    name: str
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    statistics: dict[str, Any] | None = None


@dataclass
class _Access:
    location_id: str
    scopes: frozenset[str]
    expires_at: float | None  # clock.time(); None = never (PIT)
    seen: bool = False


@dataclass
class _Refresh:
    location_id: str
    scopes: frozenset[str]


@dataclass
class _Code:
    location_id: str
    scopes: frozenset[str]
    redirect_uri: str | None


@dataclass
class _Window:
    stamps: deque[float] = field(default_factory=deque)
    daily: int = 0


# ----- small helpers ----------------------------------------------------------------------


def object_id() -> str:
    """A Mongo-ObjectId-looking 24-hex id."""
    return secrets.token_hex(12)


def _iso(when: datetime | float | str | None) -> str | None:
    if when is None or isinstance(when, str):
        return when
    if not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, tz=UTC)
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _as_int(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit():
        raise _Reject(400, OBJECT_ID_ERROR)
    return int(raw)


def _split(total: float, parts: int) -> list[int]:
    base, rem = divmod(int(total), parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]


class _Reject(Exception):
    """Raised in handlers; becomes GHL's error body."""

    def __init__(self, status: int, message: str | list[str], error: str | None = None) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message
        self.error = error


def _error_body(status: int, message: str | list[str], error: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if error:
        body["error"] = error
    if status not in (401, 422):
        body["traceId"] = str(uuid.uuid4())
    return body


def _unauthorized(message: str = INVALID_TOKEN) -> web.Response:
    return web.json_response(_error_body(401, message, "Unauthorized"), status=401)


def _envelope(status: int, message: str, results: Any = None) -> web.Response:
    body: dict[str, Any] = {"success": True, "statusCode": status, "message": message}
    if results is not None:
        body["results"] = results
    return web.json_response(body, status=status)


# ----- statistics builder -----------------------------------------------------------------

DAY_RANGE = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
AGE_BUCKETS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")


def _per_platform(total: float, platforms: Sequence[str]) -> dict[str, int]:
    return dict(zip(platforms, _split(total, len(platforms)), strict=True))


def _breakdown(total: float, platforms: Sequence[str], change: float) -> dict[str, Any]:
    values = _per_platform(total, platforms)
    return {
        "total": total,
        "totalChange": change,
        "platforms": {p: {"value": v, "change": change} for p, v in values.items()},
    }


def _series_totals(total: float, platforms: Sequence[str]) -> dict[str, Any]:
    return {p: {"total": v, "series": _split(v, 7)} for p, v in _per_platform(total, platforms).items()}


def _weighted(total: float, weights: Sequence[float]) -> list[int]:
    counts = [int(total * w / sum(weights)) for w in weights]
    counts[0] += int(total) - sum(counts)
    return counts


def _shares(total: float, keys: Sequence[str], weights: Sequence[float]) -> dict[str, Any]:
    counts = _weighted(total, weights)
    return {
        k: {"total": c, "percentage": round(100 * c / total, 2) if total else 0}
        for k, c in zip(keys, counts, strict=True)
    }


def build_statistics(
    *,
    posts: int = 0,
    likes: int = 0,
    followers: int = 0,
    impressions: int = 0,
    comments: int = 0,
    reach: int = 0,
    shares: int = 0,
    change: float = 0.0,
    platforms: Sequence[str] = ("facebook", "instagram"),
    day_range: Sequence[str] = DAY_RANGE,
) -> dict[str, Any]:
    """A spec-shaped statistics `results` object whose numbers add up to the given totals."""
    plats = list(platforms) or ["facebook"]
    likes_p, comments_p, shares_p = (_per_platform(v, plats) for v in (likes, comments, shares))
    return {
        "dayRange": list(day_range),
        "totals": {
            "posts": posts,
            "likes": likes,
            "followers": followers,
            "impressions": impressions,
            "comments": comments,
        },
        "postPerformance": {
            "posts": {p: _split(v, 7) for p, v in _per_platform(posts, plats).items()},
            "impressions": _split(impressions, 7),
            "likes": _split(likes, 7),
            "comments": _split(comments, 7),
        },
        "breakdowns": {
            "posts": _breakdown(posts, plats, change),
            "impressions": _breakdown(impressions, plats, change),
            "reach": _breakdown(reach, plats, change),
            "engagement": {
                p: {"likes": likes_p[p], "comments": comments_p[p], "shares": shares_p[p], "change": change}
                for p in plats
            },
        },
        "platformTotals": {
            "impressions": _series_totals(impressions, plats),
            "followers": _series_totals(followers, plats),
            "likes": _series_totals(likes, plats),
        },
        "demographics": {
            "gender": {"totals": _shares(followers, ("male", "female", "unknown"), (5, 4, 1))},
            "age": {"totals": dict(zip(AGE_BUCKETS, _weighted(followers, (1, 3, 4, 3, 2, 1, 1)), strict=True))},
        },
    }


# ----- the fake ---------------------------------------------------------------------------

_SCOPES: dict[tuple[str, str], str] = {
    ("GET", PREFIX + "/{locationId}/tags"): "socialplanner/tag.readonly",
    ("POST", PREFIX + "/{locationId}/tags/details"): "socialplanner/tag.readonly",
    ("GET", PREFIX + "/{locationId}/accounts"): "socialplanner/account.readonly",
    ("POST", PREFIX + "/statistics"): "socialplanner/statistics.readonly",
    ("POST", PREFIX + "/{locationId}/posts/list"): "socialplanner/post.readonly",
    ("GET", PREFIX + "/{locationId}/posts/{id}"): "socialplanner/post.readonly",
    ("POST", PREFIX + "/{locationId}/posts"): "socialplanner/post.write",
    ("PUT", PREFIX + "/{locationId}/posts/{id}"): "socialplanner/post.write",
}


class FakeGhl(LoopbackServer):
    """In-process fake of services.leadconnectorhq.com, served on 127.0.0.1:<free port>."""

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        expires_in: int = DEFAULT_EXPIRES_IN,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.latency = 0.0
        self.enforce_rate_limits = False
        self.max_page_size: int | None = None  # cap GET tags `limit` (undocumented upstream)
        self.statistics_status = 201  # v2 spec says 201; the v3 spec says 200
        self.record_calls = True
        self.on_first_use: FirstUseHook | None = None  # (location_id, token) on a token's first API use
        self.locations: dict[str, FakeLocation] = {}
        self.calls: list[Call] = []
        self.invalid_requests: list[InvalidRequest] = []
        self.faults: list[Fault] = []
        self.token_requests = 0
        self.rate_limited = 0
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}
        self._codes: dict[str, _Code] = {}
        self._latest_refresh: dict[str, str] = {}
        self._windows: dict[str, _Window] = {}
        self._specs: dict[str, OpenAPI] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    # ----- lifecycle ---------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        loc = PREFIX + "/{locationId}"
        app.router.add_get(loc + "/tags", self._tags)
        app.router.add_post(loc + "/tags/details", self._tag_details)
        app.router.add_get(loc + "/accounts", self._accounts)
        app.router.add_post(PREFIX + "/statistics", self._statistics)
        app.router.add_post(loc + "/posts/list", self._posts_list)
        app.router.add_post(loc + "/posts", self._post_create)
        app.router.add_get(loc + "/posts/{id}", self._post_get)
        app.router.add_put(loc + "/posts/{id}", self._post_edit)
        app.router.add_post(TOKEN_PATH, self._oauth_token)
        return app

    async def prepare(self) -> None:
        self._specs = await load_specs()

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    # ----- seeding -----------------------------------------------------------------------

    def add_location(
        self,
        location_id: str | None = None,
        *,
        company_id: str = "company_fake",
        user_id: str = "user_fake",
        name: str = "Fake Sub-Account",
    ) -> str:
        loc_id = location_id or f"loc_{secrets.token_hex(6)}"
        self.locations.setdefault(loc_id, FakeLocation(loc_id, company_id, user_id, name))
        return loc_id

    def location(self, location_id: str) -> FakeLocation:
        self.add_location(location_id)
        return self.locations[location_id]

    def add_tag(
        self,
        location_id: str,
        name: str,
        *,
        tag_id: str | None = None,
        deleted: bool = False,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        loc = self.location(location_id)
        stamp = _iso(created_at or self.clock.time())
        tag: dict[str, Any] = {
            "_id": tag_id or object_id(),
            "tag": name,
            "locationId": location_id,
            "createdBy": loc.user_id,
            "deleted": deleted,
            "createdAt": stamp,
            "updatedAt": stamp,
        }
        loc.tags[tag["_id"]] = tag
        return tag

    def add_tags(self, location_id: str, names: Iterable[str]) -> list[dict[str, Any]]:
        return [self.add_tag(location_id, n) for n in names]

    def add_account(
        self,
        location_id: str,
        *,
        platform: str = "facebook",
        name: str | None = None,
        type: str = "page",
        is_expired: bool = False,
        profile_id: str | None = None,
    ) -> dict[str, Any]:
        loc = self.location(location_id)
        oauth_id = object_id()
        origin = str(secrets.randbelow(10**17))
        account: dict[str, Any] = {
            "id": f"{oauth_id}_{location_id}_{origin}",
            "oauthId": oauth_id,
            "profileId": profile_id or object_id(),
            "name": name or f"{platform.title()} {type}",
            "platform": platform,
            "type": type,
            "expire": _iso(self.clock.time() + (-86400 if is_expired else 60 * 86400)),
            "isExpired": is_expired,
            "meta": {},
        }
        loc.accounts.append(account)
        return account

    def add_group(self, location_id: str, name: str, account_ids: Sequence[str]) -> dict[str, Any]:
        group = {"id": object_id(), "name": name, "accountIds": list(account_ids)}
        self.location(location_id).groups.append(group)
        return group

    def add_post(
        self,
        location_id: str,
        *,
        summary: str = "",
        tags: Sequence[str] = (),
        status: str = "published",
        published_at: datetime | None = None,
        created_at: datetime | None = None,
        account_ids: Sequence[str] | None = None,
        platform: str | None = None,
        post_type: str = "post",
        post_id: str | None = None,
    ) -> dict[str, Any]:
        loc = self.location(location_id)
        accounts = list(account_ids) if account_ids is not None else [a["id"] for a in loc.accounts[:1]]
        created = _iso(created_at or published_at or self.clock.time())
        published = _iso(published_at) if published_at else (created if status == "published" else None)
        post: dict[str, Any] = {
            "_id": post_id or object_id(),
            "source": "composer",
            "locationId": location_id,
            "platform": platform or self._platform_of(loc, accounts),
            "accountId": accounts[0] if accounts else None,
            "accountIds": accounts,
            "summary": summary,
            "media": [],
            "status": status,
            "type": post_type,
            "tags": list(tags),
            "displayDate": published or created,
            "createdAt": created,
            "updatedAt": created,
            "publishedAt": published,
            "error": "",
            "createdBy": loc.user_id,
        }
        post = {k: v for k, v in post.items() if v is not None}  # the spec has no nullable fields
        loc.posts[post["_id"]] = post
        return post

    def set_statistics(self, location_id: str, results: Mapping[str, Any]) -> None:
        self.location(location_id).statistics = copy.deepcopy(dict(results))

    @staticmethod
    def _platform_of(loc: FakeLocation, account_ids: Sequence[str]) -> str:
        for account in loc.accounts:
            if account_ids and account["id"] == account_ids[0]:
                return str(account["platform"])
        return "facebook"

    # ----- tokens ------------------------------------------------------------------------

    def add_private_token(
        self, location_id: str, token: str | None = None, *, scopes: Iterable[str] | None = None
    ) -> str:
        """A Private Integration token for one location: never expires, never refreshes."""
        self.add_location(location_id)
        tok = token or f"pit-{uuid.uuid4()}"
        self._access[tok] = _Access(location_id, frozenset(scopes or DEFAULT_SCOPES), None)
        return tok

    def issue_code(
        self,
        location_id: str,
        *,
        scopes: Iterable[str] | None = None,
        redirect_uri: str | None = None,
    ) -> str:
        """An authorization code (single use) as chooselocation would hand to the redirect."""
        self.add_location(location_id)
        code = secrets.token_hex(20)
        self._codes[code] = _Code(location_id, frozenset(scopes or DEFAULT_SCOPES), redirect_uri)
        return code

    def mint_tokens(self, location_id: str, *, scopes: Iterable[str] | None = None) -> dict[str, Any]:
        """A fresh OAuth pair without the HTTP dance (the /oauth/token body), for seeding."""
        return self._mint(location_id, frozenset(scopes or DEFAULT_SCOPES))

    def current_refresh_token(self, location_id: str) -> str | None:
        """The one refresh token GHL would still accept for this location."""
        latest = self._latest_refresh.get(location_id)
        return latest if latest in self._refresh else None

    def revoke(self, token: str) -> None:
        """Invalidate an access or refresh token (rotated PIT, uninstalled app …)."""
        self._access.pop(token, None)
        self._refresh.pop(token, None)

    def expire_access_tokens(self, location_id: str | None = None) -> None:
        now = self.clock.time()
        for grant in self._access.values():
            if grant.expires_at is not None and location_id in (None, grant.location_id):
                grant.expires_at = now - 1

    def access_token_valid(self, token: str) -> bool:
        return self._grant(token) is not None

    def _mint(self, location_id: str, scopes: frozenset[str]) -> dict[str, Any]:
        loc = self.location(location_id)
        access, refresh = f"at-{secrets.token_hex(16)}", f"rt-{secrets.token_hex(16)}"
        self._access[access] = _Access(location_id, scopes, self.clock.time() + self.expires_in)
        self._refresh[refresh] = _Refresh(location_id, scopes)
        self._latest_refresh[location_id] = refresh
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
            "scope": " ".join(sorted(scopes)),
            "userType": "Location",
            "locationId": location_id,
            "companyId": loc.company_id,
            "userId": loc.user_id,
            "isBulkInstallation": False,
        }

    def _grant(self, token: str) -> _Access | None:
        grant = self._access.get(token)
        if grant is None:
            return None
        if grant.expires_at is not None and grant.expires_at <= self.clock.time():
            return None
        return grant

    # ----- faults ------------------------------------------------------------------------

    def fail_next(
        self,
        path_substring: str,
        status: int,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        *,
        method: str | None = None,
    ) -> Fault:
        """Answer the next `times` matching requests with `status` (429 gets rate headers and
        `Retry-After: 10` unless `headers` says otherwise; `body` replaces the default body)."""
        fault = Fault(path_substring, status, times, dict(headers or {}), body, method)
        self.faults.append(fault)
        return fault

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.times <= 0 or fault.path_substring not in request.path:
                continue
            if fault.method and fault.method.upper() != request.method:
                continue
            fault.times -= 1
            return fault
        return None

    def _fault_response(self, fault: Fault) -> web.Response:
        headers: dict[str, str] = {}
        if fault.status == 429:
            headers = {"Retry-After": "10", "X-RateLimit-Remaining": "0"}
        headers.update(fault.headers)
        body = fault.body
        if body is None:
            body = self._default_fault_body(fault.status)
        if isinstance(body, str | bytes):
            return web.Response(status=fault.status, body=body, headers=headers)
        return web.json_response(body, status=fault.status, headers=headers)

    @staticmethod
    def _default_fault_body(status: int) -> dict[str, Any]:
        if status == 401:
            return _error_body(401, INVALID_TOKEN, "Unauthorized")
        if status == 422:
            return _error_body(422, ["Unprocessable Entity"], "Unprocessable Entity")
        if status == 429:
            return _error_body(429, "Too Many Requests")
        if status >= 500:
            return _error_body(status, "Internal server error")
        return _error_body(status, "Injected fault")

    # ----- request pipeline --------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()
        call = self._record(request, raw)
        bucket = "anonymous"
        try:
            resp, bucket = await self._dispatch(request, handler, raw)
        except _Reject as exc:
            resp = web.json_response(_error_body(exc.status, exc.message, exc.error), status=exc.status)
        except web.HTTPException as exc:
            resp = web.json_response(_error_body(exc.status, exc.reason), status=exc.status)
        self._rate_headers(resp, bucket)
        if call is not None:
            call.status = resp.status
        return resp

    async def _dispatch(self, request: web.Request, handler: Handler, raw: bytes) -> tuple[web.StreamResponse, str]:
        if self.latency:
            await asyncio.sleep(self.latency)
        http_exception = request.match_info.http_exception
        if http_exception is not None:
            raise http_exception
        problems = self._validate(request, raw)
        if problems:
            self.invalid_requests.append(InvalidRequest(request.method, request.path, problems))
            body = _error_body(422, problems, "Unprocessable Entity")
            return web.json_response(body, status=422), "anonymous"
        fault = self._take_fault(request)
        if fault is not None:
            return self._fault_response(fault), "anonymous"
        if request.path.startswith("/oauth/"):
            return await handler(request), "oauth"
        denied, location_id = await self._authorize(request)
        if denied is not None:
            return denied, location_id or "anonymous"
        assert location_id is not None
        limited = self._count_request(location_id)
        if limited is not None:
            return limited, location_id
        return await handler(request), location_id

    def _validate(self, request: web.Request, raw: bytes) -> list[str]:
        """Spec problems of this request ([] = valid); identical requests are validated once."""
        if not VALIDATES:
            return []
        ctype = request.headers.get("Content-Type", "").lower()
        key = (request.method, request.path, tuple(request.query.items()), request.headers.get("Version"), ctype, raw)
        cached = _VALIDATION_MEMO.get(key)
        if cached is None:
            cached = tuple(self._validate_uncached(request, raw, ctype))
            if len(_VALIDATION_MEMO) >= _VALIDATION_MEMO_MAX:
                _VALIDATION_MEMO.clear()
            _VALIDATION_MEMO[key] = cached
        return list(cached)

    def _validate_uncached(self, request: web.Request, raw: bytes, ctype: str) -> list[str]:
        spec = self._specs["oauth" if request.path.startswith("/oauth/") else "social"]
        headers = CIMultiDict(request.headers)
        headers.setdefault("Authorization", "Bearer -")  # bearers are checked by _authorize
        req = _SpecRequest(
            method=request.method.lower(),
            path=request.path,
            body=raw or None,
            content_type=ctype,
            parameters=RequestParameters(query=MultiDict(request.query), header=headers, cookie={}),
        )
        try:
            return _spec_messages(list(spec.iter_request_errors(req)))
        except Exception as exc:  # a validator crash is a finding too
            return [f"validator error: {type(exc).__name__}: {exc}"]

    async def _authorize(self, request: web.Request) -> tuple[web.Response | None, str | None]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        grant = self._grant(token.strip()) if scheme.lower() == "bearer" else None
        if grant is None:
            return _unauthorized(), None
        target = request.match_info.get("locationId") or request.query.get("locationId")
        if target and target != grant.location_id:
            body = _error_body(403, "The token does not have access to this location.", "Forbidden")
            return web.json_response(body, status=403), grant.location_id
        route = request.match_info.route.resource
        needed = _SCOPES.get((request.method, route.canonical if route else ""))
        if needed and needed not in grant.scopes:
            return _unauthorized(SCOPE_ERROR), grant.location_id
        if not grant.seen:
            grant.seen = True
            if self.on_first_use is not None:
                await self.on_first_use(grant.location_id, token.strip())
        return None, grant.location_id

    def _window(self, key: str) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        now = self.clock.monotonic()
        while window.stamps and now - window.stamps[0] >= RATE_INTERVAL_MS / 1000:
            window.stamps.popleft()
        return window

    def _count_request(self, location_id: str) -> web.Response | None:
        window = self._window(location_id)
        if self.enforce_rate_limits and (len(window.stamps) >= RATE_MAX or window.daily >= DAILY_LIMIT):
            self.rate_limited += 1
            wait = RATE_INTERVAL_MS / 1000 - (self.clock.monotonic() - window.stamps[0]) if window.stamps else 1
            headers = {"Retry-After": str(max(1, math.ceil(wait)))}
            return web.json_response(_error_body(429, "Too Many Requests"), status=429, headers=headers)
        window.stamps.append(self.clock.monotonic())
        window.daily += 1
        return None

    def _rate_headers(self, resp: web.StreamResponse, key: str) -> None:
        window = self._window(key)
        remaining = RATE_MAX - len(window.stamps)
        if not self.enforce_rate_limits:
            remaining = max(1, remaining)
        values = {
            "X-RateLimit-Max": str(RATE_MAX),
            "X-RateLimit-Remaining": str(max(0, remaining)),
            "X-RateLimit-Interval-Milliseconds": str(RATE_INTERVAL_MS),
            "X-RateLimit-Limit-Daily": str(DAILY_LIMIT),
            "X-RateLimit-Daily-Remaining": str(max(0, DAILY_LIMIT - window.daily)),
        }
        for name, value in values.items():
            resp.headers.setdefault(name, value)

    def _record(self, request: web.Request, raw: bytes) -> Call | None:
        if not self.record_calls:
            return None
        body: Any = None
        if raw:
            ctype = request.headers.get("Content-Type", "")
            if "x-www-form-urlencoded" in ctype:
                body = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
        headers = {k.lower(): v for k, v in request.headers.items()}
        call = Call(request.method, request.path, dict(request.query), headers, body)
        self.calls.append(call)
        return call

    # ----- Social Planner handlers -------------------------------------------------------

    def _loc(self, request: web.Request) -> FakeLocation:
        location_id = request.match_info.get("locationId") or request.query.get("locationId", "")
        return self.location(location_id)

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        body = json.loads(await request.read())
        if not isinstance(body, dict):
            raise _Reject(422, ["body must be an object"], "Unprocessable Entity")
        return body

    async def _tags(self, request: web.Request) -> web.Response:
        loc = self._loc(request)
        search = (request.query.get("searchText") or "").lower()
        skip = _as_int(request.query.get("skip"), 0)
        limit = _as_int(request.query.get("limit"), 10)
        if self.max_page_size is not None:
            limit = min(limit, self.max_page_size)
        tags = list(loc.tags.values())
        if search:
            tags = [t for t in tags if search in t["tag"].lower()]
        results = {"tags": tags[skip : skip + limit], "count": len(tags)}
        return _envelope(200, "Fetched Tags by Location ID", results)

    async def _tag_details(self, request: web.Request) -> web.Response:
        loc = self._loc(request)
        wanted = dict.fromkeys((await self._json(request)).get("tagIds") or [])
        tags = [loc.tags[tid] for tid in wanted if tid in loc.tags]
        return _envelope(201, "Fetched Tags by Tag IDs", {"tags": tags, "count": len(tags)})

    async def _accounts(self, request: web.Request) -> web.Response:
        loc = self._loc(request)
        return _envelope(200, "Fetched Accounts", {"accounts": loc.accounts, "groups": loc.groups})

    async def _statistics(self, request: web.Request) -> web.Response:
        loc = self._loc(request)
        body = await self._json(request)
        if len(body.get("profileIds") or []) > 100:
            raise _Reject(400, "profileIds must contain no more than 100 elements")
        results = loc.statistics if loc.statistics is not None else build_statistics()
        answer = {"results": results, "message": "Analytics Built Successfully", "traceId": str(uuid.uuid4())}
        return web.json_response(answer, status=self.statistics_status)

    async def _posts_list(self, request: web.Request) -> web.Response:
        loc = self._loc(request)
        body = await self._json(request)
        skip, limit = _as_int(body.get("skip"), 0), _as_int(body.get("limit"), 10)
        start, end = _parse_date(body.get("fromDate")), _parse_date(body.get("toDate"))
        if start is None or end is None:
            raise _Reject(400, "fromDate and toDate must be ISO 8601 dates")
        kind = body.get("type") or "all"
        if kind not in LIST_TYPES:
            raise _Reject(400, f"type must be one of the following values: {', '.join(sorted(LIST_TYPES))}")
        accounts = {a.strip() for a in (body.get("accounts") or "").split(",") if a.strip()}
        posts = [p for p in loc.posts.values() if self._post_matches(p, kind, start, end, accounts)]
        posts.sort(key=lambda p: p.get("publishedAt") or p.get("createdAt") or "", reverse=True)
        page = [self._with_user(loc, p) if body.get("includeUsers") == "true" else p for p in posts]
        return _envelope(201, "Fetched Posts", {"posts": page[skip : skip + limit], "count": len(posts)})

    @staticmethod
    def _post_matches(post: dict[str, Any], kind: str, start: datetime, end: datetime, accounts: set[str]) -> bool:
        status = post.get("status")
        if kind in ("all", "recent"):
            if status == "deleted":
                return False
        elif status != kind:
            return False
        if accounts and not accounts.intersection(post.get("accountIds") or []):
            return False
        when = _parse_date(post.get("publishedAt")) or _parse_date(post.get("createdAt"))
        return when is not None and start <= when <= end

    @staticmethod
    def _with_user(loc: FakeLocation, post: dict[str, Any]) -> dict[str, Any]:
        user = {
            "id": loc.user_id,
            "title": "",
            "firstName": "Fake",
            "lastName": "User",
            "profilePhoto": "",
            "phone": "",
            "email": "fake@example.com",
        }
        return {**post, "user": user}

    def _post_or_404(self, request: web.Request) -> dict[str, Any]:
        post = self._loc(request).posts.get(request.match_info["id"])
        if post is None:
            raise _Reject(404, "Post not found", "Not Found")
        return post

    async def _post_get(self, request: web.Request) -> web.Response:
        return _envelope(200, "Fetched Post", {"post": self._post_or_404(request)})

    def _check_tags(self, loc: FakeLocation, tags: Any) -> list[str]:
        if tags is None:
            return []
        bad = [t for t in tags if t not in loc.tags or loc.tags[t]["deleted"]]
        if bad:
            raise _Reject(400, f"{OBJECT_ID_ERROR}: invalid tag id(s) {', '.join(map(str, bad))}", "Bad Request")
        return list(tags)

    async def _post_create(self, request: web.Request) -> web.Response:
        loc = self._loc(request)
        body = await self._json(request)
        tags = self._check_tags(loc, body.get("tags"))
        status = body.get("status") or "scheduled"
        post = self.add_post(
            loc.location_id,
            summary=body.get("summary") or "",
            tags=tags,
            status=status,
            account_ids=body.get("accountIds") or [],
            post_type=body.get("type") or "post",
        )
        post["media"] = body.get("media") or []
        post["createdBy"] = body.get("userId") or loc.user_id
        if body.get("scheduleDate"):
            post["displayDate"] = body["scheduleDate"]
        return _envelope(201, "Created Post", {"post": post})

    async def _post_edit(self, request: web.Request) -> web.Response:
        loc = self._loc(request)
        post = self._post_or_404(request)
        body = await self._json(request)
        if "tags" in body:
            post["tags"] = self._check_tags(loc, body["tags"])
        for key in ("summary", "media", "accountIds", "type", "status", "categoryId"):
            if key in body:
                post[key] = body[key]
        post["updatedAt"] = _iso(self.clock.time())
        return _envelope(200, "Updated Post")

    # ----- OAuth -------------------------------------------------------------------------

    async def _oauth_token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = dict(parse_qsl((await request.read()).decode("utf-8"), keep_blank_values=True))
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return _oauth_error(401, "invalid_client", "Invalid client credentials")
        if form.get("user_type") != "Location":
            return _oauth_error(400, "invalid_request", "user_type must be Location")
        grant = form.get("grant_type")
        if grant == "authorization_code":
            return self._grant_code(form)
        if grant == "refresh_token":
            return self._grant_refresh(form)
        return _oauth_error(400, "unsupported_grant_type", f"{grant} is not supported here")

    def _grant_code(self, form: dict[str, str]) -> web.Response:
        code = self._codes.pop(form.get("code", ""), None)
        if code is None:
            return _oauth_error(400, "invalid_grant", "Invalid grant: authorization code is invalid")
        if code.redirect_uri is not None and form.get("redirect_uri") != code.redirect_uri:
            return _oauth_error(400, "invalid_grant", "Invalid grant: redirect_uri does not match")
        return web.json_response(self._mint(code.location_id, code.scopes))

    def _grant_refresh(self, form: dict[str, str]) -> web.Response:
        grant = self._refresh.pop(form.get("refresh_token", ""), None)
        if grant is None:
            return _oauth_error(400, "invalid_grant", "Invalid grant: refresh token is invalid")
        return web.json_response(self._mint(grant.location_id, grant.scopes))


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


@asynccontextmanager
async def spec_checked_ghl(clock: Clock | None = None) -> AsyncIterator[FakeGhl]:
    """A running FakeGhl that must end with no request that broke GHL's spec (the test fixtures' fake)."""
    async with FakeGhl(clock=clock) as fake:
        yield fake
        assert fake.invalid_requests == []

"""GhlClient against the spec-validating fake: headers, string params, retries, 401 handling (reference 12)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.clock import FakeClock
from bot.ghl.auth import OAuthApp, OAuthTokenProvider, PrivateTokenProvider
from bot.ghl.client import GhlClient
from bot.ghl.errors import (
    GhlAuthError,
    GhlBadRequest,
    GhlForbidden,
    GhlNotConnected,
    GhlRateLimited,
    GhlUnavailable,
)
from bot.secrets import SecretBox
from bot.store.db import Database
from bot.store.installations import Installation, InstallationStore
from tests.fakes.ghl_api import API_VERSION, FakeGhl, build_statistics, spec_checked_ghl

pytestmark = pytest.mark.asyncio

LOC = "loc_client_1"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class RecordingLimiter:
    """Records which keys the client waited for (the default KeyedWindows paces in real time)."""

    keys: list[str] = field(default_factory=list)

    async def acquire(self, key: str) -> None:
        self.keys.append(key)


@pytest.fixture
async def ghl(clock: FakeClock) -> AsyncIterator[FakeGhl]:
    async with spec_checked_ghl(clock) as fake:
        fake.add_location(LOC)
        yield fake


@pytest.fixture
def limiter() -> RecordingLimiter:
    return RecordingLimiter()


@pytest.fixture
def pit(ghl: FakeGhl) -> str:
    return ghl.add_private_token(LOC)


@pytest.fixture
def client(ghl: FakeGhl, http: httpx.AsyncClient, clock: FakeClock, limiter: RecordingLimiter, pit: str) -> GhlClient:
    return GhlClient(
        http,
        api_base=ghl.base_url,
        version=API_VERSION,
        tokens=PrivateTokenProvider(pit, LOC),
        clock=clock,
        limiter=limiter,
    )


def api_calls(ghl: FakeGhl) -> list[str]:
    return [f"{c.method} {c.path}" for c in ghl.calls if not c.path.startswith("/oauth/")]


# ----- checklist 1 & 2: headers, string params, 200/201 ------------------------------------


async def test_every_request_carries_bearer_version_and_accept(
    client: GhlClient, ghl: FakeGhl, pit: str, limiter: RecordingLimiter
) -> None:
    acct = ghl.add_account(LOC, platform="facebook")
    tag = ghl.add_tag(LOC, "Promo")
    post = ghl.add_post(LOC, summary="hello", tags=[tag["_id"]], published_at=NOW - timedelta(days=1))
    await client.list_tags(LOC)
    await client.tag_details(LOC, [tag["_id"]])
    await client.accounts(LOC)
    await client.statistics(LOC, [acct["profileId"]])
    await client.list_posts(LOC, from_date=NOW - timedelta(days=7), to_date=NOW)
    await client.get_post(LOC, post["_id"])
    await client.edit_post(LOC, post["_id"], {"type": "post", "tags": [tag["_id"]]})
    assert len(ghl.calls) == 7 and limiter.keys == [LOC] * 7
    for call in ghl.calls:
        assert call.headers["authorization"] == f"Bearer {pit}"
        assert call.headers["version"] == "2021-07-28"
        assert call.headers["accept"] == "application/json"
        assert call.status in (200, 201)


async def test_paging_values_are_strings(client: GhlClient, ghl: FakeGhl) -> None:
    ghl.add_post(LOC, summary="a", published_at=NOW - timedelta(hours=1))
    await client.list_tags(LOC, search="pro", skip=20, limit=10)
    await client.list_posts(LOC, from_date=NOW - timedelta(days=1), to_date=NOW, skip=0, limit=50)
    tags_call, posts_call = ghl.calls
    assert tags_call.query == {"skip": "20", "limit": "10", "searchText": "pro"}
    body = posts_call.body
    assert body == {
        "type": "all",
        "skip": "0",
        "limit": "50",
        "fromDate": "2025-12-31T00:00:00.000Z",
        "toDate": "2026-01-01T00:00:00.000Z",
        "includeUsers": "false",
    }
    assert all(isinstance(v, str) for v in body.values())


@pytest.mark.parametrize("status", [200, 201])
async def test_statistics_accepts_200_and_201(client: GhlClient, ghl: FakeGhl, status: int) -> None:
    ghl.statistics_status = status
    ghl.set_statistics(
        LOC, build_statistics(posts=4, likes=40, followers=500, impressions=800, comments=8, reach=600, change=12.5)
    )
    acct = ghl.add_account(LOC, platform="instagram")
    stats = await client.statistics(LOC, [acct["profileId"]], platforms=["instagram", "facebook"])
    assert stats.totals.likes == 40 and stats.totals.followers == 500
    assert stats.breakdowns.reach.total == 600 and stats.breakdowns.reach.total_change == 12.5
    assert sum(stats.post_performance.likes) == 40
    assert stats.day_range[0] == "Mon"
    assert set(stats.platform_totals.followers) == {"facebook", "instagram"}
    assert stats.demographics.gender.totals["male"].total > 0
    assert sum(stats.demographics.age.totals.values()) == 500
    assert ghl.calls[-1].query == {"locationId": LOC}
    assert ghl.calls[-1].body == {"profileIds": [acct["profileId"]], "platforms": ["instagram", "facebook"]}


async def test_statistics_sends_at_most_100_profile_ids(
    client: GhlClient, ghl: FakeGhl, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.ghl"):
        await client.statistics(LOC, [f"profile{i}" for i in range(150)])
    assert len(ghl.calls[-1].body["profileIds"]) == 100
    assert "first 100" in caplog.text
    with pytest.raises(ValueError):
        await client.statistics(LOC, [])


async def test_tags_pages_until_short_page_and_drops_deleted(client: GhlClient, ghl: FakeGhl) -> None:
    names = [f"tag-{i:03d}" for i in range(250)]
    ghl.add_tags(LOC, names)
    ghl.add_tag(LOC, "gone", deleted=True)
    tags = await client.all_tags(LOC, page_size=100)
    assert [t.name for t in tags] == names
    assert [c.query["skip"] for c in ghl.calls] == ["0", "100", "200"]
    assert all(t.location_id == LOC and len(t.id) == 24 for t in tags)


async def test_tags_with_a_known_total_skip_the_trailing_empty_page(client: GhlClient, ghl: FakeGhl) -> None:
    names = [f"tag-{i:04d}" for i in range(1000)]
    ghl.add_tags(LOC, names)
    tags = await client.all_tags(LOC, page_size=100)
    assert [t.name for t in tags] == names  # pages fetched concurrently, merged in order
    assert sorted(int(c.query["skip"]) for c in ghl.calls) == list(range(0, 1000, 100))


async def test_tags_keep_paging_when_server_caps_page_size(client: GhlClient, ghl: FakeGhl) -> None:
    ghl.max_page_size = 40
    ghl.add_tags(LOC, [f"t{i}" for i in range(130)])
    tags = await client.all_tags(LOC, page_size=100)
    assert len(tags) == 130
    assert [c.query["skip"] for c in ghl.calls] == ["0", "40", "80", "120"]


async def test_tag_details_batches_100_ids(client: GhlClient, ghl: FakeGhl) -> None:
    tags = ghl.add_tags(LOC, [f"t{i}" for i in range(230)])
    ids = [t["_id"] for t in tags]
    found = await client.tag_details(LOC, ids + ids[:5])
    assert {t.id for t in found} == set(ids)
    assert [len(c.body["tagIds"]) for c in ghl.calls] == [100, 100, 30]
    assert await client.tag_details(LOC, []) == []


async def test_accounts_and_posts_parse(client: GhlClient, ghl: FakeGhl) -> None:
    live = ghl.add_account(LOC, platform="linkedin", type="page")
    ghl.add_account(LOC, platform="instagram", is_expired=True)
    ghl.add_account(LOC, platform="twitter")
    ghl.add_group(LOC, "Main", [live["id"]])
    accounts = await client.accounts(LOC)
    assert [a.reports_statistics for a in accounts.accounts] == [True, False, False]
    assert accounts.accounts[1].is_expired and accounts.groups[0].account_ids == [live["id"]]

    tag = ghl.add_tag(LOC, "Promo")
    ghl.add_post(LOC, summary="Big promo", tags=[tag["_id"]], published_at=NOW - timedelta(hours=3))
    page = await client.list_posts(LOC, from_date=NOW - timedelta(days=1), to_date=NOW, type="published")
    assert page.count == 1
    post = page.posts[0]
    assert post.tags == [tag["_id"]] and post.summary == "Big promo" and post.status == "published"
    assert post.published_at == NOW - timedelta(hours=3)
    again = await client.get_post(LOC, post.id)
    assert again.id == post.id and again.account_ids == [live["id"]]


async def test_create_post_with_tag_ids(client: GhlClient, ghl: FakeGhl) -> None:
    acct = ghl.add_account(LOC)
    tag = ghl.add_tag(LOC, "Promo")
    body = {
        "accountIds": [acct["id"]],
        "type": "post",
        "userId": "u1",
        "summary": "s",
        "media": [],
        "tags": [tag["_id"]],
    }
    post = await client.create_post(LOC, body)
    assert post.tags == [tag["_id"]] and post.id in ghl.location(LOC).posts
    with pytest.raises(GhlBadRequest) as info:
        await client.create_post(LOC, {**body, "tags": ["Promo"]})
    assert info.value.status == 400 and info.value.trace_id


# ----- checklist 3: 429 / 5xx / 4xx ---------------------------------------------------------


async def test_429_waits_retry_after_then_succeeds(
    client: GhlClient, ghl: FakeGhl, clock: FakeClock, limiter: RecordingLimiter
) -> None:
    ghl.fail_next("/tags", 429, times=2, headers={"Retry-After": "3"})
    start = clock.time()
    await client.list_tags(LOC)
    waited = clock.time() - start
    assert api_calls(ghl) == [f"GET /social-media-posting/{LOC}/tags"] * 3
    assert 6 <= waited <= 6 * 1.1  # Retry-After twice, up to 10 % jitter; the location pause overlaps
    assert limiter.keys == [LOC] * 3 and client.paused_for(LOC) == 0


async def test_429_without_retry_after_uses_rate_interval(
    client: GhlClient, ghl: FakeGhl, clock: FakeClock, limiter: RecordingLimiter
) -> None:
    ghl.fail_next(
        "/accounts",
        429,
        headers={"Retry-After": "", "X-RateLimit-Remaining": "0", "X-RateLimit-Interval-Milliseconds": "5000"},
    )
    start = clock.time()
    await client.accounts(LOC)
    assert 5 <= clock.time() - start <= 5.5 + 0.01


async def test_remaining_zero_on_success_pauses_the_location(
    client: GhlClient, ghl: FakeGhl, clock: FakeClock, limiter: RecordingLimiter
) -> None:
    ghl.fail_next("/accounts", 200, headers={"X-RateLimit-Remaining": "0"}, body={"success": True, "results": {}})
    await client.accounts(LOC)
    assert client.paused_for(LOC) == 10.0
    start = clock.monotonic()
    await client.accounts(LOC)  # waits out the pause before sending
    assert clock.monotonic() - start == 10.0 and client.paused_for(LOC) == 0


async def test_default_limiter_with_fake_clock_never_waits_for_real(
    ghl: FakeGhl, http: httpx.AsyncClient, clock: FakeClock, pit: str
) -> None:
    client = GhlClient(
        http, api_base=ghl.base_url, version=API_VERSION, tokens=PrivateTokenProvider(pit, LOC), clock=clock
    )
    ghl.fail_next("/accounts", 429, times=2)  # Retry-After: 10 and X-RateLimit-Remaining: 0
    real_start, fake_start = time.monotonic(), clock.time()
    await client.accounts(LOC)
    assert clock.time() - fake_start >= 20
    assert time.monotonic() - real_start < 2


async def test_429_retries_are_bounded(client: GhlClient, ghl: FakeGhl) -> None:
    ghl.fail_next("/tags", 429, times=10, headers={"Retry-After": "2"})
    with pytest.raises(GhlRateLimited) as info:
        await client.list_tags(LOC)
    assert len(api_calls(ghl)) == 4
    assert info.value.retry_after == 2 and info.value.kind == "rate_limited"


async def test_429_with_long_retry_after_gives_up_at_once(client: GhlClient, ghl: FakeGhl, clock: FakeClock) -> None:
    ghl.fail_next("/tags", 429, headers={"Retry-After": "3600"})
    start = clock.time()
    with pytest.raises(GhlRateLimited) as info:
        await client.list_tags(LOC)
    assert len(api_calls(ghl)) == 1 and info.value.retry_after == 3600
    assert clock.time() - start < 1


async def test_5xx_is_retried_with_bounded_backoff(client: GhlClient, ghl: FakeGhl, clock: FakeClock) -> None:
    ghl.fail_next("/accounts", 502, times=2)
    start = clock.time()
    await client.accounts(LOC)
    assert len(api_calls(ghl)) == 3
    assert 0.5 + 1 <= clock.time() - start <= 1 + 2  # 1 s then 2 s ceilings, equal jitter


async def test_5xx_gives_up_after_max_attempts(client: GhlClient, ghl: FakeGhl) -> None:
    ghl.fail_next("/accounts", 500, times=10)
    with pytest.raises(GhlUnavailable) as info:
        await client.accounts(LOC)
    assert len(api_calls(ghl)) == 4 and info.value.status == 500 and info.value.trace_id


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_4xx_are_not_retried(client: GhlClient, ghl: FakeGhl, status: int) -> None:
    ghl.fail_next("/tags", status)
    with pytest.raises(GhlBadRequest) as info:
        await client.list_tags(LOC)
    assert len(api_calls(ghl)) == 1 and info.value.status == status and info.value.kind == "bad_request"


async def test_create_post_is_not_resent_after_a_5xx(client: GhlClient, ghl: FakeGhl) -> None:
    ghl.fail_next("/posts", 500, method="POST")
    with pytest.raises(GhlUnavailable):
        await client.create_post(LOC, {"accountIds": ["a"], "type": "post", "userId": "u"})
    assert len(api_calls(ghl)) == 1


async def test_transport_errors_are_retried_then_reported(clock: FakeClock, limiter: RecordingLimiter) -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.url.path)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"success": True, "results": {"tags": [], "count": 0}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = GhlClient(
            http,
            api_base="http://127.0.0.1:9",
            version=API_VERSION,
            tokens=PrivateTokenProvider("pit-x", LOC),
            clock=clock,
            limiter=limiter,
        )
        page = await client.list_tags(LOC)
        assert page.tags == [] and len(attempts) == 3

        def always_down(request: httpx.Request) -> httpx.Response:
            attempts.append("down")
            raise httpx.ReadTimeout("slow", request=request)

        http._transport = httpx.MockTransport(always_down)
        with pytest.raises(GhlUnavailable) as info:
            await client.accounts(LOC)
        assert info.value.status == 0 and attempts.count("down") == 4
        with pytest.raises(GhlUnavailable):
            await client.create_post(LOC, {"accountIds": ["a"], "type": "post", "userId": "u"})
        assert attempts.count("down") == 5  # a read timeout may have created it: no resend


# ----- checklist 4: 401 ---------------------------------------------------------------------


async def test_pit_401_raises_auth_error_without_refresh(
    client: GhlClient, ghl: FakeGhl, pit: str, caplog: pytest.LogCaptureFixture
) -> None:
    ghl.revoke(pit)
    with caplog.at_level(logging.DEBUG), pytest.raises(GhlAuthError) as info:
        await client.list_tags(LOC)
    assert info.value.kind == "auth" and "Private Integration" in info.value.message
    assert len(api_calls(ghl)) == 1 and ghl.token_requests == 0
    assert pit not in caplog.text and pit not in str(info.value)


async def test_missing_scope_is_forbidden_not_refreshed(
    ghl: FakeGhl, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    narrow = ghl.add_private_token(LOC, scopes=["socialplanner/account.readonly"])
    client = GhlClient(
        http, api_base=ghl.base_url, version=API_VERSION, tokens=PrivateTokenProvider(narrow, LOC), clock=clock
    )
    with pytest.raises(GhlForbidden) as info:
        await client.list_tags(LOC)
    assert "scope" in info.value.message and len(api_calls(ghl)) == 1


async def test_token_for_another_location(client: GhlClient, ghl: FakeGhl) -> None:
    with pytest.raises(GhlNotConnected):
        await client.accounts("loc_elsewhere")
    assert ghl.calls == []


@pytest.fixture
async def oauth(
    tmp_path: object, ghl: FakeGhl, http: httpx.AsyncClient, clock: FakeClock, limiter: RecordingLimiter
) -> AsyncIterator[tuple[GhlClient, InstallationStore]]:
    """A client on OAuth tokens (an installation already stored), and the store that holds them."""
    db = await Database.open(f"sqlite:///{tmp_path}/t.db")
    store = InstallationStore(db, SecretBox("test-key"), clock)
    pair = ghl.mint_tokens(LOC)
    await store.save(
        Installation(
            location_id=LOC,
            access_token=pair["access_token"],
            refresh_token=pair["refresh_token"],
            expires_at=clock.time() + pair["expires_in"],
        )
    )
    app = OAuthApp(ghl.client_id, ghl.client_secret, token_url=ghl.token_url, redirect_uri="https://bot.test/cb")
    provider = OAuthTokenProvider(app, store, http, clock)
    client = GhlClient(http, api_base=ghl.base_url, version=API_VERSION, tokens=provider, clock=clock, limiter=limiter)
    yield client, store
    await db.close()


async def test_401_refreshes_exactly_once_and_retries_once(
    ghl: FakeGhl, oauth: tuple[GhlClient, InstallationStore]
) -> None:
    client, store = oauth
    before = await store.get(LOC)
    assert before is not None
    ghl.revoke(before.access_token)  # GHL no longer accepts it although it has not expired
    await client.accounts(LOC)
    after = await store.get(LOC)
    assert after is not None and after.generation == before.generation + 1
    assert ghl.token_requests == 1
    assert api_calls(ghl) == [f"GET /social-media-posting/{LOC}/accounts"] * 2
    assert ghl.calls[-1].headers["authorization"] == f"Bearer {after.access_token}"


async def test_second_401_is_final(ghl: FakeGhl, oauth: tuple[GhlClient, InstallationStore]) -> None:
    client, _ = oauth
    ghl.fail_next("/accounts", 401, times=5, body={"statusCode": 401, "message": "Invalid JWT", "traceId": "tr-401"})
    with pytest.raises(GhlAuthError) as info:
        await client.accounts(LOC)
    assert ghl.token_requests == 1 and len(api_calls(ghl)) == 2
    assert info.value.trace_id == "tr-401"


# ----- checklist 8: 422 arrays and traceId --------------------------------------------------


async def test_422_message_array_is_joined_and_trace_logged(
    client: GhlClient, ghl: FakeGhl, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "statusCode": 422,
        "message": ["skip must be a string", "limit must be a string"],
        "error": "Unprocessable Entity",
        "traceId": "trace-422-abc",
    }
    ghl.fail_next("/tags", 422, body=body)
    with caplog.at_level(logging.WARNING, logger="bot.ghl"), pytest.raises(GhlBadRequest) as info:
        await client.list_tags(LOC)
    assert info.value.message == "skip must be a string; limit must be a string"
    assert info.value.trace_id == "trace-422-abc"
    assert "trace-422-abc" in caplog.text

"""OAuth install, rotation and storage of GHL tokens (reference 7.3 and checklist items 4-7)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.clock import FakeClock
from bot.ghl.auth import DEFAULT_SCOPES, OAuthApp, OAuthTokenProvider, PrivateTokenProvider
from bot.ghl.client import GhlClient
from bot.ghl.errors import GhlAuthError, GhlBadRequest, GhlNeedsReconnect, GhlNotConnected
from bot.secrets import SecretBox
from bot.store.db import Database
from bot.store.installations import NEEDS_RECONNECT, Installation, InstallationStore
from tests.fakes.ghl_api import API_VERSION, FakeGhl, spec_checked_ghl

pytestmark = pytest.mark.asyncio

LOC = "loc_auth_1"
KEY = "test-secret-key"
REDIRECT = "https://bot.example.com/oauth/ghl/callback"


@pytest.fixture
async def ghl(clock: FakeClock) -> AsyncIterator[FakeGhl]:
    async with spec_checked_ghl(clock) as fake:
        fake.add_location(LOC)
        yield fake


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = await Database.open(db_url)
    yield database
    await database.close()


@pytest.fixture
def store(db: Database, clock: FakeClock) -> InstallationStore:
    return InstallationStore(db, SecretBox(KEY), clock)


@pytest.fixture
def app(ghl: FakeGhl) -> OAuthApp:
    return OAuthApp(ghl.client_id, ghl.client_secret, token_url=ghl.token_url, redirect_uri=REDIRECT)


@pytest.fixture
def provider(app: OAuthApp, store: InstallationStore, http: httpx.AsyncClient, clock: FakeClock) -> OAuthTokenProvider:
    return OAuthTokenProvider(app, store, http, clock)


def make_client(ghl: FakeGhl, http: httpx.AsyncClient, provider: OAuthTokenProvider, clock: FakeClock) -> GhlClient:
    return GhlClient(http, api_base=ghl.base_url, version=API_VERSION, tokens=provider, clock=clock)


async def install(ghl: FakeGhl, provider: OAuthTokenProvider) -> Installation:
    return await provider.exchange_code(ghl.issue_code(LOC, redirect_uri=REDIRECT))


# ----- authorize URL and code exchange ----------------------------------------------------


async def test_authorize_url_has_code_flow_and_space_separated_scopes() -> None:
    app = OAuthApp("cid-1", "secret", redirect_uri=REDIRECT)
    url = app.authorize_url_for("state-xyz")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://marketplace.gohighlevel.com/v2/oauth/chooselocation"
    )
    query = parse_qs(parts.query)
    assert query["response_type"] == ["code"] and query["client_id"] == ["cid-1"]
    assert query["redirect_uri"] == [REDIRECT] and query["state"] == ["state-xyz"]
    assert query["scope"] == [" ".join(DEFAULT_SCOPES)]
    assert len(DEFAULT_SCOPES) == 5 and "socialplanner/post.write" in DEFAULT_SCOPES
    assert "secret" not in url and "secret" not in repr(app)


async def test_exchange_code_stores_an_encrypted_installation(
    ghl: FakeGhl, provider: OAuthTokenProvider, store: InstallationStore, db: Database, clock: FakeClock
) -> None:
    inst = await install(ghl, provider)
    assert inst.location_id == LOC and inst.company_id == "company_fake" and inst.user_id == "user_fake"
    assert inst.expires_at == clock.time() + 86399 and inst.status == "active"
    assert set(inst.scope.split()) == set(DEFAULT_SCOPES)
    call = ghl.calls[-1]
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert call.body["grant_type"] == "authorization_code" and call.body["user_type"] == "Location"
    assert call.body["redirect_uri"] == REDIRECT and "version" not in call.headers

    row = await db.fetchone("SELECT * FROM installations WHERE location_id = ?", (LOC,))
    assert row is not None
    raw = " ".join(str(v) for v in tuple(row))
    assert inst.access_token not in raw and inst.refresh_token not in raw
    assert SecretBox(KEY).decrypt(row["refresh_token"]) == inst.refresh_token
    assert await store.get(LOC) == inst
    assert inst.access_token not in repr(inst) and inst.refresh_token not in repr(inst)


async def test_bad_code_is_a_bad_request(ghl: FakeGhl, provider: OAuthTokenProvider) -> None:
    with pytest.raises(GhlBadRequest):
        await provider.exchange_code("not-a-code")
    assert ghl.token_requests == 1


# ----- proactive refresh, single flight, restart ------------------------------------------


async def test_fresh_token_is_used_as_is_and_refreshed_near_expiry(
    ghl: FakeGhl, provider: OAuthTokenProvider, store: InstallationStore, clock: FakeClock
) -> None:
    inst = await install(ghl, provider)
    assert await provider.access_token(LOC) == inst.access_token
    clock.advance(86399 - 299)  # inside the 5-minute margin
    fresh = await provider.access_token(LOC)
    assert fresh != inst.access_token and ghl.token_requests == 2
    stored = await store.get(LOC)
    assert stored is not None and stored.generation == inst.generation + 1
    assert stored.refresh_token == ghl.current_refresh_token(LOC) != inst.refresh_token
    refresh_call = ghl.calls[-1].body
    assert refresh_call["grant_type"] == "refresh_token" and refresh_call["refresh_token"] == inst.refresh_token


async def test_twenty_concurrent_calls_on_an_expired_token_refresh_once_and_survive_restart(
    ghl: FakeGhl,
    http: httpx.AsyncClient,
    provider: OAuthTokenProvider,
    app: OAuthApp,
    db: Database,
    db_url: str,
    clock: FakeClock,
) -> None:
    await install(ghl, provider)
    ghl.add_tags(LOC, ["a", "b"])
    clock.advance(86400)  # expired
    ghl.latency = 0.01  # keep the refresh in flight while the others pile up
    client = make_client(ghl, http, provider, clock)
    pages = await asyncio.gather(*(client.list_tags(LOC) for _ in range(20)))
    assert all(len(p.tags) == 2 for p in pages)
    assert ghl.token_requests == 2  # the install + ONE refresh
    await db.close()

    # "Restart": a new connection, store, provider and client on the same file.
    db2 = await Database.open(db_url)
    try:
        store2 = InstallationStore(db2, SecretBox(KEY), clock)
        provider2 = OAuthTokenProvider(app, store2, http, clock)
        client2 = make_client(ghl, http, provider2, clock)
        assert len((await client2.list_tags(LOC)).tags) == 2
        assert ghl.token_requests == 2
        clock.advance(86400)
        assert len((await client2.list_tags(LOC)).tags) == 2  # the persisted refresh token is the live one
        assert ghl.token_requests == 3
    finally:
        await db2.close()


async def test_refresh_answered_400_marks_needs_reconnect_without_looping(
    ghl: FakeGhl,
    http: httpx.AsyncClient,
    provider: OAuthTokenProvider,
    store: InstallationStore,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inst = await install(ghl, provider)
    ghl.revoke(inst.refresh_token)
    clock.advance(86400)
    client = make_client(ghl, http, provider, clock)
    with caplog.at_level(logging.DEBUG), pytest.raises(GhlNeedsReconnect) as info:
        await client.accounts(LOC)
    assert info.value.kind == "needs_reconnect" and "invalid" in info.value.message.lower()
    assert ghl.token_requests == 2
    stored = await store.get(LOC)
    assert stored is not None and stored.status == NEEDS_RECONNECT
    for _ in range(3):
        with pytest.raises(GhlNeedsReconnect):
            await client.accounts(LOC)
    assert ghl.token_requests == 2 and not [c for c in ghl.calls if "/social-media-posting/" in c.path]
    assert inst.refresh_token not in caplog.text and inst.access_token not in caplog.text
    assert await store.list_active() == []


class HookTransport(httpx.AsyncBaseTransport):
    """Runs `before_token` ahead of the first /oauth/token request it forwards."""

    def __init__(self, before_token: Callable[[], Awaitable[None]]) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._before = before_token
        self._fired = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token" and not self._fired:
            self._fired = True
            await self._before()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_refusal_rereads_once_and_adopts_a_concurrent_rotation(
    ghl: FakeGhl,
    app: OAuthApp,
    provider: OAuthTokenProvider,
    http: httpx.AsyncClient,
    db_url: str,
    clock: FakeClock,
) -> None:
    """Two processes share the database; B read the old pair, A rotates first, B's refresh is refused."""
    await install(ghl, provider)
    clock.advance(86400)
    db_b = await Database.open(db_url)
    store_b = InstallationStore(db_b, SecretBox(KEY), clock)
    winner: list[str] = []

    async def a_rotates_first() -> None:
        winner.append(await provider.access_token(LOC))  # process A refreshes and persists

    try:
        async with httpx.AsyncClient(transport=HookTransport(a_rotates_first)) as http_b:
            provider_b = OAuthTokenProvider(app, store_b, http_b, clock)
            token_b = await provider_b.access_token(LOC)  # spends the old refresh token → 400, re-read
        assert token_b == winner[0]
        assert ghl.token_requests == 3  # install, A's refresh, B's refused refresh
        stored = await store_b.get(LOC)
        assert stored is not None and stored.status == "active"
    finally:
        await db_b.close()


# ----- checklist 7: persist before use --------------------------------------------------------


@dataclass
class RowAtFirstUse:
    access_is_stored: bool
    refresh_is_live: bool


async def test_new_pair_is_persisted_before_the_new_access_token_is_used(
    ghl: FakeGhl,
    http: httpx.AsyncClient,
    provider: OAuthTokenProvider,
    store: InstallationStore,
    clock: FakeClock,
) -> None:
    inst = await install(ghl, provider)
    seen: list[RowAtFirstUse] = []

    async def inspect_row(location_id: str, token: str) -> None:
        row = await store.get(location_id)
        assert row is not None
        live = ghl.current_refresh_token(location_id)
        seen.append(RowAtFirstUse(row.access_token == token, row.refresh_token == live))

    ghl.on_first_use = inspect_row
    clock.advance(86400)
    await make_client(ghl, http, provider, clock).accounts(LOC)
    assert seen == [RowAtFirstUse(True, True)]
    assert (await store.get(LOC)) != inst


async def test_crash_right_after_refresh_loses_nothing(
    ghl: FakeGhl,
    http: httpx.AsyncClient,
    provider: OAuthTokenProvider,
    app: OAuthApp,
    db: Database,
    db_url: str,
    clock: FakeClock,
) -> None:
    await install(ghl, provider)
    clock.advance(86400)
    task: asyncio.Task[object] | None = None

    async def crash(location_id: str, token: str) -> None:
        assert task is not None
        task.cancel()  # the process dies the moment the new access token reaches GHL

    ghl.on_first_use = crash
    task = asyncio.ensure_future(make_client(ghl, http, provider, clock).accounts(LOC))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ghl.token_requests == 2
    await db.close()

    db2 = await Database.open(db_url)
    try:
        store2 = InstallationStore(db2, SecretBox(KEY), clock)
        stored = await store2.get(LOC)
        assert stored is not None and stored.refresh_token == ghl.current_refresh_token(LOC)
        assert ghl.access_token_valid(stored.access_token)
        ghl.on_first_use = None
        client2 = make_client(ghl, http, OAuthTokenProvider(app, store2, http, clock), clock)
        await client2.accounts(LOC)
        clock.advance(86400)
        await client2.accounts(LOC)
        assert ghl.token_requests == 3
    finally:
        await db2.close()


# ----- refreshed_after_401 and PIT ----------------------------------------------------------


async def test_refreshed_after_401_skips_refresh_when_someone_already_did(
    ghl: FakeGhl, provider: OAuthTokenProvider, store: InstallationStore, clock: FakeClock
) -> None:
    inst = await install(ghl, provider)
    stale = inst.access_token
    forced = await provider.refreshed_after_401(LOC, stale)
    assert forced is not None and forced != stale and ghl.token_requests == 2
    again = await provider.refreshed_after_401(LOC, stale)  # a second caller holding the old token
    assert again == forced and ghl.token_requests == 2


async def test_not_connected_location(provider: OAuthTokenProvider) -> None:
    with pytest.raises(GhlNotConnected) as info:
        await provider.access_token("loc_unknown")
    assert info.value.kind == "not_connected" and info.value.location_id == "loc_unknown"


async def test_private_token_provider() -> None:
    pit = PrivateTokenProvider("pit-secret-value", LOC)
    assert await pit.access_token(LOC) == "pit-secret-value"
    assert "pit-secret-value" not in repr(pit)
    with pytest.raises(GhlNotConnected):
        await pit.access_token("loc_other")
    with pytest.raises(GhlAuthError) as info:
        await pit.refreshed_after_401(LOC, "pit-secret-value")
    assert "rotated or revoked" in info.value.message and "pit-secret-value" not in str(info.value)


# ----- the store ----------------------------------------------------------------------------


async def test_store_rotate_is_compare_and_swap(store: InstallationStore, db: Database, clock: FakeClock) -> None:
    inst = Installation(location_id=LOC, access_token="a0", refresh_token="r0", expires_at=clock.time() + 10)
    saved = await store.save(inst)
    assert saved.generation == 0
    assert await store.rotate(LOC, 0, "a1", "r1", clock.time() + 100, "s1") is True
    assert await store.rotate(LOC, 0, "a2", "r2", clock.time() + 100) is False  # stale generation
    current = await store.get(LOC)
    assert current is not None
    assert (current.access_token, current.refresh_token, current.generation, current.scope) == ("a1", "r1", 1, "s1")

    assert await store.mark_needs_reconnect(LOC, expected_generation=0) is False
    assert await store.mark_needs_reconnect(LOC, expected_generation=1) is True
    assert await store.list_active() == []
    assert await store.rotate(LOC, 1, "a3", "r3", clock.time() + 100) is True  # a late winner heals it
    assert [i.location_id for i in await store.list_active()] == [LOC]

    reinstalled = await store.save(Installation(location_id=LOC, access_token="x", refresh_token="y", expires_at=1.0))
    assert reinstalled.generation == 3 and reinstalled.access_token == "x"
    row = await db.fetchone("SELECT access_token, refresh_token FROM installations")
    assert row is not None and row["access_token"] != "x" and row["refresh_token"] != "y"
    assert await store.delete(LOC) is True and await store.get(LOC) is None


async def test_a_forged_state_with_non_ascii_is_refused_not_an_error() -> None:
    from bot.secrets import SecretBox

    box = SecretBox("k" * 32)
    assert box.verify("nonce", box.sign("nonce"))
    assert not box.verify("nonce", "é" * 10)


async def test_tokens_sealed_with_another_key_read_as_needing_a_reconnect(
    ghl: FakeGhl, provider: OAuthTokenProvider, db: Database, clock: FakeClock
) -> None:
    await install(ghl, provider)
    other = InstallationStore(db, SecretBox("a-different-key"), clock)  # BOT_SECRET_KEY was changed
    inst = await other.get(LOC)
    assert inst is not None and inst.status == NEEDS_RECONNECT and inst.access_token == ""
    assert await other.list_active() == []  # the scheduler skips it instead of failing every location

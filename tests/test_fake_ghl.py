"""The fake GHL API behaves like the reference and the official spec say (so other tests can trust it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi_core.datatypes import RequestParameters

from bot.clock import FakeClock
from tests.fakes.ghl_api import API_VERSION, FakeGhl, build_statistics, load_specs, spec_checked_ghl

pytestmark = pytest.mark.asyncio

LOC = "loc_fake_1"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def ghl(clock: FakeClock) -> AsyncIterator[FakeGhl]:
    # Every test leaves the fake with no spec violations unless it cleared them on purpose.
    async with spec_checked_ghl(clock) as fake:
        fake.add_location(LOC)
        yield fake


@pytest.fixture
async def http(ghl: FakeGhl) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ghl.base_url) as client:
        yield client


def auth(token: str, version: str | None = API_VERSION) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if version is not None:
        headers["Version"] = version
    return headers


def posts_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "type": "all",
        "skip": "0",
        "limit": "50",
        "fromDate": "2025-12-01T00:00:00.000Z",
        "toDate": "2026-01-02T00:00:00.000Z",
        "includeUsers": "false",
    }
    return {**body, **overrides}


# ----- validation is real ---------------------------------------------------------------


async def test_numeric_skip_is_rejected_with_unprocessable_dto(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    resp = await http.post(
        f"/social-media-posting/{LOC}/posts/list", json=posts_body(skip=0, limit=50), headers=auth(token)
    )
    assert resp.status_code == 422
    body = resp.json()
    assert body["statusCode"] == 422 and body["error"] == "Unprocessable Entity"
    assert isinstance(body["message"], list) and any("skip" in m for m in body["message"])
    assert len(ghl.invalid_requests) == 1 and ghl.invalid_requests[0].path.endswith("/posts/list")
    ghl.invalid_requests.clear()


@pytest.mark.parametrize("version", [None, "2023-02-21", "v3"])
async def test_version_header_must_be_2021_07_28(ghl: FakeGhl, http: httpx.AsyncClient, version: str | None) -> None:
    token = ghl.add_private_token(LOC)
    resp = await http.get(f"/social-media-posting/{LOC}/tags", headers=auth(token, version))
    assert resp.status_code == 422
    assert any("Version" in m for m in resp.json()["message"])
    ghl.invalid_requests.clear()


async def test_statistics_needs_location_query_and_profile_ids(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    missing_loc = await http.post("/social-media-posting/statistics", json={"profileIds": ["p"]}, headers=auth(token))
    empty = await http.post(
        "/social-media-posting/statistics", params={"locationId": LOC}, json={"profileIds": []}, headers=auth(token)
    )
    bad_platform = await http.post(
        "/social-media-posting/statistics",
        params={"locationId": LOC},
        json={"profileIds": ["p"], "platforms": ["twitter"]},
        headers=auth(token),
    )
    assert [missing_loc.status_code, empty.status_code, bad_platform.status_code] == [422, 422, 422]
    assert len(ghl.invalid_requests) == 3
    ghl.invalid_requests.clear()


async def test_token_endpoint_is_form_only(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    resp = await http.post(
        "/oauth/token",
        json={"client_id": ghl.client_id, "client_secret": ghl.client_secret, "grant_type": "refresh_token"},
    )
    assert resp.status_code == 422
    ghl.invalid_requests.clear()


async def test_post_tags_is_405_no_tag_writes(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    resp = await http.post(f"/social-media-posting/{LOC}/tags", json={"tag": "New"}, headers=auth(token))
    assert resp.status_code == 405


# ----- auth -------------------------------------------------------------------------------


async def test_bearer_is_checked(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    path = f"/social-media-posting/{LOC}/accounts"
    no_auth = await http.get(path, headers={"Version": API_VERSION})
    bad = await http.get(path, headers=auth("nope"))
    assert no_auth.status_code == bad.status_code == 401
    assert bad.json() == {
        "statusCode": 401,
        "message": "Invalid token: access token is invalid",
        "error": "Unauthorized",
    }


async def test_token_location_and_scope_are_enforced(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    other = ghl.add_private_token("loc_other")
    narrow = ghl.add_private_token(LOC, scopes=["socialplanner/account.readonly"])
    wrong_loc = await http.get(f"/social-media-posting/{LOC}/tags", headers=auth(other))
    no_scope = await http.get(f"/social-media-posting/{LOC}/tags", headers=auth(narrow))
    allowed = await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth(narrow))
    assert wrong_loc.status_code == 403
    assert no_scope.status_code == 401 and "scope" in no_scope.json()["message"]
    assert allowed.status_code == 200


async def test_oauth_codes_and_rotating_refresh_tokens(ghl: FakeGhl, http: httpx.AsyncClient, clock: FakeClock) -> None:
    form = {"client_id": ghl.client_id, "client_secret": ghl.client_secret, "user_type": "Location"}
    code = ghl.issue_code(LOC)
    first = await http.post("/oauth/token", data={**form, "grant_type": "authorization_code", "code": code})
    assert first.status_code == 200
    pair = first.json()
    assert pair["locationId"] == LOC and pair["expires_in"] == 86399 and pair["userType"] == "Location"
    reused_code = await http.post("/oauth/token", data={**form, "grant_type": "authorization_code", "code": code})
    assert reused_code.status_code == 400

    refreshed = await http.post(
        "/oauth/token", data={**form, "grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new_pair = refreshed.json()
    assert new_pair["refresh_token"] != pair["refresh_token"]
    assert ghl.current_refresh_token(LOC) == new_pair["refresh_token"]

    reused = await http.post(
        "/oauth/token", data={**form, "grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
    )
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": "Invalid grant: refresh token is invalid"}
    assert ghl.token_requests == 4

    assert ghl.access_token_valid(new_pair["access_token"])
    clock.advance(86399)
    assert not ghl.access_token_valid(new_pair["access_token"])
    expired = await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth(new_pair["access_token"]))
    assert expired.status_code == 401


async def test_wrong_client_secret_is_refused(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    resp = await http.post(
        "/oauth/token",
        data={"client_id": ghl.client_id, "client_secret": "wrong", "grant_type": "authorization_code", "code": "x"},
    )
    assert resp.status_code == 401


# ----- endpoints --------------------------------------------------------------------------


async def test_tags_search_paging_and_count(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    ghl.add_tags(LOC, [f"promo-{i}" for i in range(15)] + ["launch"])
    resp = await http.get(
        f"/social-media-posting/{LOC}/tags",
        params={"searchText": "PROMO", "skip": "10", "limit": "10"},
        headers=auth(token),
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["success"] is True and body["message"] == "Fetched Tags by Location ID"
    assert body["results"]["count"] == 15
    assert [t["tag"] for t in body["results"]["tags"]] == [f"promo-{i}" for i in range(10, 15)]
    tag = body["results"]["tags"][0]
    assert len(tag["_id"]) == 24 and int(tag["_id"], 16) >= 0
    assert set(tag) >= {"_id", "tag", "locationId", "deleted", "createdAt"}


async def test_tag_details_answers_201(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    tags = ghl.add_tags(LOC, ["a", "b", "c"])
    resp = await http.post(
        f"/social-media-posting/{LOC}/tags/details",
        json={"tagIds": [tags[0]["_id"], tags[2]["_id"], "0" * 24]},
        headers=auth(token),
    )
    assert resp.status_code == 201
    assert [t["tag"] for t in resp.json()["results"]["tags"]] == ["a", "c"]


async def test_statistics_201_without_envelope(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    acct = ghl.add_account(LOC, platform="instagram")
    ghl.set_statistics(LOC, build_statistics(posts=7, likes=70, followers=1000, impressions=900, comments=14))
    resp = await http.post(
        "/social-media-posting/statistics",
        params={"locationId": LOC},
        json={"profileIds": [acct["profileId"]]},
        headers=auth(token),
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"results", "message", "traceId"} and body["message"] == "Analytics Built Successfully"
    results = body["results"]
    assert results["totals"] == {"posts": 7, "likes": 70, "followers": 1000, "impressions": 900, "comments": 14}
    assert sum(results["postPerformance"]["likes"]) == 70
    assert sum(v["value"] for v in results["breakdowns"]["impressions"]["platforms"].values()) == 900
    too_many = await http.post(
        "/social-media-posting/statistics",
        params={"locationId": LOC},
        json={"profileIds": [f"p{i}" for i in range(101)]},
        headers=auth(token),
    )
    assert too_many.status_code == 400


async def test_posts_list_filters_dates_and_status(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    ghl.add_account(LOC, platform="facebook")
    inside = ghl.add_post(LOC, summary="in", published_at=NOW - timedelta(days=2))
    ghl.add_post(LOC, summary="old", published_at=NOW - timedelta(days=90))
    draft = ghl.add_post(LOC, summary="draft", status="draft", created_at=NOW - timedelta(days=1))
    path = f"/social-media-posting/{LOC}/posts/list"
    everything = await http.post(path, json=posts_body(), headers=auth(token))
    published = await http.post(path, json=posts_body(type="published", includeUsers="true"), headers=auth(token))
    assert everything.status_code == published.status_code == 201
    assert {p["_id"] for p in everything.json()["results"]["posts"]} == {inside["_id"], draft["_id"]}
    posts = published.json()["results"]["posts"]
    assert [p["_id"] for p in posts] == [inside["_id"]] and posts[0]["user"]["id"]


async def test_create_post_needs_existing_tag_ids_and_put_edits(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    acct = ghl.add_account(LOC)
    tag = ghl.add_tag(LOC, "Promo")
    base = {"accountIds": [acct["id"]], "type": "post", "userId": "user_1", "summary": "hi", "media": []}
    by_name = await http.post(
        f"/social-media-posting/{LOC}/posts", json={**base, "tags": ["Promo"]}, headers=auth(token)
    )
    assert by_name.status_code == 400
    created = await http.post(
        f"/social-media-posting/{LOC}/posts", json={**base, "tags": [tag["_id"]]}, headers=auth(token)
    )
    assert created.status_code == 201
    post = created.json()["results"]["post"]
    assert post["tags"] == [tag["_id"]]

    other = ghl.add_tag(LOC, "Launch")
    edit = await http.put(
        f"/social-media-posting/{LOC}/posts/{post['_id']}",
        json={"type": "post", "tags": [tag["_id"], other["_id"]]},
        headers=auth(token),
    )
    assert edit.status_code == 200 and "results" not in edit.json()
    fetched = await http.get(f"/social-media-posting/{LOC}/posts/{post['_id']}", headers=auth(token))
    assert fetched.json()["results"]["post"]["tags"] == [tag["_id"], other["_id"]]
    missing = await http.get(f"/social-media-posting/{LOC}/posts/{'f' * 24}", headers=auth(token))
    assert missing.status_code == 404


# ----- rate limits and faults -------------------------------------------------------------


async def test_rate_headers_on_every_response_and_enforced_limit(
    ghl: FakeGhl, http: httpx.AsyncClient, clock: FakeClock
) -> None:
    token = ghl.add_private_token(LOC)
    unauthorized = await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth("nope"))
    assert "X-RateLimit-Remaining" in unauthorized.headers
    ghl.enforce_rate_limits = True
    statuses = []
    for _ in range(101):
        resp = await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth(token))
        statuses.append(resp.status_code)
        for name in ("Max", "Remaining", "Interval-Milliseconds", "Limit-Daily", "Daily-Remaining"):
            assert f"X-RateLimit-{name}" in resp.headers
    assert statuses[:100] == [200] * 100 and statuses[100] == 429
    assert resp.headers["X-RateLimit-Remaining"] == "0" and int(resp.headers["Retry-After"]) >= 1
    clock.advance(10)
    again = await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth(token))
    assert again.status_code == 200


async def test_fail_next_injects_and_then_recovers(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    token = ghl.add_private_token(LOC)
    ghl.fail_next("/accounts", 429, times=1)
    ghl.fail_next("/accounts", 503, times=1)
    path = f"/social-media-posting/{LOC}/accounts"
    limited, down, ok = [await http.get(path, headers=auth(token)) for _ in range(3)]
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "10"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert down.status_code == 503 and ok.status_code == 200


async def test_first_use_hook_and_revoke(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    seen: list[tuple[str, str]] = []

    async def hook(location_id: str, token: str) -> None:
        seen.append((location_id, token))

    ghl.on_first_use = hook
    token = ghl.add_private_token(LOC)
    for _ in range(2):
        assert (await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth(token))).status_code == 200
    assert seen == [(LOC, token)]
    ghl.revoke(token)
    assert (await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth(token))).status_code == 401


# ----- the fake's answers match the spec's response schemas --------------------------------


class _SpecResponse:
    def __init__(self, resp: httpx.Response) -> None:
        self.status_code = resp.status_code
        self.data = resp.content
        self.content_type = resp.headers.get("Content-Type", "")
        self.headers = resp.headers


class _SpecRequest:
    def __init__(self, resp: httpx.Response) -> None:
        req = resp.request
        self.host_url = "https://services.leadconnectorhq.com"
        self.path = req.url.path
        self.method = req.method.lower()
        self.body = req.content or None
        self.content_type = req.headers.get("Content-Type", "")
        self.parameters = RequestParameters(query=dict(req.url.params), header=dict(req.headers), cookie={})


async def test_fake_responses_match_the_spec(ghl: FakeGhl, http: httpx.AsyncClient) -> None:
    specs = await load_specs()
    token = ghl.add_private_token(LOC)
    acct = ghl.add_account(LOC, platform="linkedin")
    tag = ghl.add_tag(LOC, "Promo")
    post = ghl.add_post(LOC, summary="x", tags=[tag["_id"]], published_at=NOW - timedelta(days=1))
    ghl.set_statistics(LOC, build_statistics(posts=3, likes=5, platforms=["linkedin"]))
    answers = [
        await http.get(f"/social-media-posting/{LOC}/tags", params={"skip": "0", "limit": "5"}, headers=auth(token)),
        await http.post(
            f"/social-media-posting/{LOC}/tags/details", json={"tagIds": [tag["_id"]]}, headers=auth(token)
        ),
        await http.get(f"/social-media-posting/{LOC}/accounts", headers=auth(token)),
        await http.post(
            "/social-media-posting/statistics",
            params={"locationId": LOC},
            json={"profileIds": [acct["profileId"]]},
            headers=auth(token),
        ),
        await http.post(f"/social-media-posting/{LOC}/posts/list", json=posts_body(), headers=auth(token)),
        await http.get(f"/social-media-posting/{LOC}/posts/{post['_id']}", headers=auth(token)),
    ]
    for resp in answers:
        assert resp.is_success, resp.text
        errors = list(specs["social"].iter_response_errors(_SpecRequest(resp), _SpecResponse(resp)))
        assert errors == [], (resp.request.url, errors)

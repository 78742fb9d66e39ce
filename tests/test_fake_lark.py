"""The fake Lark Open API behaves like the reference says (so other tests can trust it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.fakes.lark_api import FakeLark

APP_ID, APP_SECRET = "cli_fake", "s3cret"
CARD = {"schema": "2.0", "config": {"update_multi": True}, "body": {"elements": []}}


async def _token(http: httpx.AsyncClient) -> str:
    resp = await http.post(
        "/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": APP_ID, "app_secret": APP_SECRET},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["code"] == 0
    assert 7000 < body["expire"] <= 7200
    token: str = body["tenant_access_token"]
    return token


def _card_msg(chat_id: str = "oc_1", **extra: Any) -> dict[str, Any]:
    body = {"receive_id": chat_id, "msg_type": "interactive", "content": json.dumps(CARD)}
    return {**body, **extra}


async def _send(http: httpx.AsyncClient, token: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post(
        "/open-apis/im/v1/messages",
        params={"receive_id_type": "chat_id"},
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.mark.asyncio
async def test_token_issue_and_validation() -> None:
    async with (
        FakeLark(APP_ID, APP_SECRET) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        assert fake.base_url.startswith("http://127.0.0.1:")
        bad = await http.post(
            "/open-apis/auth/v3/tenant_access_token/internal",
            json={"app_id": APP_ID, "app_secret": "wrong"},
        )
        assert bad.status_code == 400
        assert bad.json()["code"] == 10003
        assert fake.token_requests == 0
        token = await _token(http)
        assert token.startswith("t-")
        assert fake.calls[-1].response["expire"] == 7200
        assert await _token(http) == token  # plenty of life left: same token
        assert fake.token_requests == 2

        missing = await http.post(
            "/open-apis/im/v1/messages?receive_id_type=chat_id", json=_card_msg()
        )
        assert missing.status_code == 400
        assert missing.json()["code"] == 99991661
        forged = await _send(http, "t-forged", _card_msg())
        assert forged.status_code == 400
        assert forged.json()["code"] == 99991663

        ok = await _send(http, token, _card_msg())
        assert ok.status_code == 200
        assert ok.json()["data"]["message_id"].startswith("om_")
        fake.expire_tokens()
        expired = await _send(http, token, _card_msg())
        assert expired.json()["code"] == 99991663
        assert await _token(http) != token
        assert len(fake.sent_messages()) == 1
        assert fake.calls[0].path.endswith("tenant_access_token/internal")


@pytest.mark.asyncio
async def test_send_reply_and_card_validation() -> None:
    async with (
        FakeLark(APP_ID, APP_SECRET) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        token = await _token(http)
        auth = {"Authorization": f"Bearer {token}"}
        not_string = await _send(http, token, {**_card_msg(), "content": CARD})
        assert not_string.status_code == 400
        v1_card = {"config": {"update_multi": True}, "elements": []}
        bad_card = await _send(http, token, {**_card_msg(), "content": json.dumps(v1_card)})
        assert bad_card.json()["code"] == 230099
        huge = {**CARD, "body": {"elements": [{"tag": "markdown", "content": "x" * 31_000}]}}
        too_big = await _send(http, token, {**_card_msg(), "content": json.dumps(huge)})
        assert too_big.json()["code"] == 230025

        fake.register_message("om_user", "oc_1")
        reply = await http.post(
            "/open-apis/im/v1/messages/om_user/reply",
            json={"msg_type": "text", "content": json.dumps({"text": "hi"})},
            headers=auth,
        )
        assert reply.json()["data"]["chat_id"] == "oc_1"
        [sent] = fake.sent_messages()
        assert sent["kind"] == "reply"
        assert sent["reply_to"] == "om_user"
        assert sent["content"] == {"text": "hi"}

        patched = await http.patch(
            f"/open-apis/im/v1/messages/{reply.json()['data']['message_id']}",
            json={"content": json.dumps(CARD)},
            headers=auth,
        )
        assert patched.json() == {"code": 0, "msg": "success", "data": {}}
        assert fake.patches()[0]["content"] == CARD


@pytest.mark.asyncio
async def test_uuid_idempotency() -> None:
    async with (
        FakeLark(APP_ID, APP_SECRET) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        token = await _token(http)
        first = await _send(http, token, _card_msg(uuid="digest:oc_1:2024-06-01"))
        again = await _send(http, token, _card_msg(uuid="digest:oc_1:2024-06-01"))
        other = await _send(http, token, _card_msg(uuid="digest:oc_1:2024-06-02"))
        assert first.json()["data"]["message_id"] == again.json()["data"]["message_id"]
        assert other.json()["data"]["message_id"] != first.json()["data"]["message_id"]
        assert [m["uuid"] for m in fake.sent_messages()] == [
            "digest:oc_1:2024-06-01",
            "digest:oc_1:2024-06-02",
        ]
        assert fake.dedup_hits == 1
        assert len(fake.calls_to("/im/v1/messages", "POST")) == 3
        assert fake.sent_messages()[0]["content"] == CARD


@pytest.mark.asyncio
async def test_delayed_update_token_two_uses() -> None:
    async with (
        FakeLark(APP_ID, APP_SECRET) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        auth = {"Authorization": f"Bearer {await _token(http)}"}
        body = {"token": "c-abc", "card": CARD}
        codes = []
        for _ in range(3):
            resp = await http.post("/open-apis/interactive/v1/card/update", json=body, headers=auth)
            codes.append((resp.status_code, resp.json()["code"]))
        assert codes == [(200, 0), (200, 0), (400, 200830)]
        assert [u["token"] for u in fake.delayed_updates()] == ["c-abc", "c-abc"]


@pytest.mark.asyncio
async def test_fault_injection_and_chat_info() -> None:
    async with (
        FakeLark(APP_ID, APP_SECRET) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        token = await _token(http)
        fake.fail_next("/im/v1/messages", times=2)
        for _ in range(2):
            throttled = await _send(http, token, _card_msg())
            assert throttled.status_code == 429
            assert throttled.json()["code"] == 99991400
            assert throttled.headers["x-ogw-ratelimit-reset"] == "1"
        assert (await _send(http, token, _card_msg())).status_code == 200
        assert len(fake.sent_messages()) == 1

        fake.fail_next("/im/v1/messages", status=400, code=230020)
        assert (await _send(http, token, _card_msg())).json()["code"] == 230020

        auth = {"Authorization": f"Bearer {token}"}
        fake.add_chat("oc_g", owner_id="ou_boss", name="Growth")
        chat = (await http.get("/open-apis/im/v1/chats/oc_g", headers=auth)).json()
        assert chat["data"]["owner_id"] == "ou_boss"
        assert chat["data"]["owner_id_type"] == "open_id"
        assert chat["data"]["chat_mode"] == "group"
        assert chat["data"]["name"] == "Growth"
        unknown = await http.get("/open-apis/im/v1/chats/oc_nope", headers=auth)
        assert unknown.status_code == 400
        assert unknown.json()["code"] == 230002


@pytest.mark.asyncio
async def test_rate_limits_and_wait_for() -> None:
    async with (
        FakeLark(APP_ID, APP_SECRET) as fake,
        httpx.AsyncClient(base_url=fake.base_url) as http,
    ):
        token = await _token(http)
        fake.enforce_rate_limits = True
        results = await asyncio.gather(
            *(_send(http, token, _card_msg("oc_busy")) for _ in range(7))
        )
        assert sorted(r.status_code for r in results) == [200] * 5 + [429] * 2
        assert {r.json()["code"] for r in results if r.status_code == 429} == {230020}
        assert fake.rate_limited == 2

        fake.latency = 0.05
        pending = asyncio.ensure_future(_send(http, token, _card_msg("oc_quiet")))
        await fake.wait_for(lambda f: any(m["chat_id"] == "oc_quiet" for m in f.sent_messages()))
        assert (await pending).status_code == 200
        with pytest.raises(TimeoutError):
            await fake.wait_for(lambda f: len(f.sent_messages()) > 99, timeout=0.05)

"""bot/lark/client.py LarkClient against the fake Lark API over a real httpx.AsyncClient (reference §8-§11)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bot.clock import FakeClock, SystemClock
from bot.lark.client import LarkApiError, LarkClient, LarkLimits
from bot.metrics import Metrics
from cards.help import help_card, internal_error_card
from cards.i18n import T
from cards.kit import card, markdown
from tests.cardcheck import assert_fake_cards_valid
from tests.fakes.lark_api import FakeLark

APP_ID, APP_SECRET = "cli_client_test", "client-secret"
CARD = internal_error_card("ref1")
SEND = "/open-apis/im/v1/messages"


@dataclass
class Rig:
    fake: FakeLark
    client: LarkClient
    clock: Any
    metrics: Metrics


@pytest.fixture
async def fake() -> AsyncIterator[FakeLark]:
    async with FakeLark(APP_ID, APP_SECRET) as f:
        yield f


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0, limits=httpx.Limits(max_connections=200)) as client:
        yield client


def make_client(fake: FakeLark, http: httpx.AsyncClient, *, clock: Any = None, limits: LarkLimits | None = None,
                max_attempts: int = 4) -> Rig:
    clock = clock or SystemClock()
    metrics = Metrics()
    client = LarkClient(http, domain=fake.base_url, app_id=APP_ID, app_secret=APP_SECRET, clock=clock,
                        metrics=metrics, limits=limits or LarkLimits.platform(), max_attempts=max_attempts)
    return Rig(fake, client, clock, metrics)


def sends(fake: FakeLark) -> list[Any]:
    return [c for c in fake.calls_to(SEND, "POST")]


# -- tenant token -------------------------------------------------------------------------------------------


async def test_token_is_fetched_once_for_concurrent_sends(fake: FakeLark, http: httpx.AsyncClient) -> None:
    fake.latency = 0.05  # the token request is in flight while the other 19 sends ask for it
    rig = make_client(fake, http)
    ids = await asyncio.gather(*(rig.client.send_card(f"oc_{i}", CARD) for i in range(20)))
    assert fake.token_requests == 1
    assert len(set(ids)) == 20 and all(i.startswith("om_") for i in ids)
    assert len(fake.sent_messages()) == 20
    tokens = {c.headers["authorization"] for c in sends(fake)}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer t-")
    await rig.client.send_card("oc_more", CARD)
    assert fake.token_requests == 1  # cached
    assert_fake_cards_valid(fake)


async def test_token_is_refreshed_ten_minutes_before_expiry(fake: FakeLark, http: httpx.AsyncClient) -> None:
    clock = FakeClock()
    rig = make_client(fake, http, clock=clock)
    await rig.client.send_card("oc_1", CARD)
    clock.advance(7200 - 600 - 5)
    await rig.client.send_card("oc_1", CARD)
    assert fake.token_requests == 1
    clock.advance(10)
    await rig.client.send_card("oc_1", CARD)
    assert fake.token_requests == 2


async def test_expired_token_is_invalidated_and_the_call_retried_once(fake: FakeLark,
                                                                        http: httpx.AsyncClient) -> None:
    rig = make_client(fake, http)
    await rig.client.send_card("oc_1", CARD)
    old = sends(fake)[0].headers["authorization"]
    fake.expire_tokens()
    message_id = await rig.client.send_card("oc_1", CARD)
    assert message_id.startswith("om_")
    assert fake.token_requests == 2
    first, retry = sends(fake)[1:]
    assert (first.status, first.response["code"]) == (400, 99991663)
    assert first.headers["authorization"] == old
    assert retry.status == 200 and retry.headers["authorization"] != old
    assert len(fake.sent_messages()) == 2
    # Retried once only: a token that keeps failing surfaces as an error, not a loop.
    fake.fail_next(SEND, status=400, code=99991663, times=5)
    with pytest.raises(LarkApiError) as err:
        await rig.client.send_card("oc_1", CARD)
    assert err.value.code == 99991663
    assert len(sends(fake)) == 3 + 2
    assert fake.token_requests == 3


async def test_missing_authorization_99991661_is_retried_with_a_fresh_token(fake: FakeLark,
                                                                              http: httpx.AsyncClient) -> None:
    rig = make_client(fake, http)
    fake.fail_next(SEND, status=400, code=99991661)
    assert (await rig.client.send_card("oc_1", CARD)).startswith("om_")
    assert len(sends(fake)) == 2 and len(fake.sent_messages()) == 1


# -- throttling ---------------------------------------------------------------------------------------------


async def test_429_waits_for_the_reset_header_then_retries(fake: FakeLark, http: httpx.AsyncClient) -> None:
    clock = FakeClock()
    rig = make_client(fake, http, clock=clock)
    fake.fail_next(SEND, status=429, code=99991400, headers={"x-ogw-ratelimit-limit": "50",
                                                              "x-ogw-ratelimit-reset": "3"}, times=2)
    before = clock.monotonic()
    assert (await rig.client.send_card("oc_1", CARD)).startswith("om_")
    waited = clock.monotonic() - before
    assert 2 * 3.0 <= waited <= 2 * (3.0 + 0.3)  # reset seconds + jitter, per throttled attempt
    assert [c.status for c in sends(fake)] == [429, 429, 200]
    assert len(fake.sent_messages()) == 1


async def test_429_gives_up_after_max_attempts(fake: FakeLark, http: httpx.AsyncClient) -> None:
    clock = FakeClock()
    rig = make_client(fake, http, clock=clock, max_attempts=3)
    fake.fail_next(SEND, status=429, code=99991400, headers={"x-ogw-ratelimit-reset": "1"}, times=10)
    with pytest.raises(LarkApiError) as err:
        await rig.client.send_card("oc_1", CARD)
    assert err.value.code == 99991400 and err.value.http_status == 429
    assert err.value.log_id and err.value.log_id.startswith("log_")
    assert len(sends(fake)) == 3
    assert fake.sent_messages() == []
    # Between attempts only: three attempts, two waits.
    assert 2.0 <= clock.monotonic() - 1000.0 <= 2 * 1.3


async def test_chat_rate_limit_230020_backs_off_that_chat_only(fake: FakeLark, http: httpx.AsyncClient) -> None:
    rig = make_client(fake, http)
    fake.fail_next(SEND, status=400, code=230020, headers={"x-ogw-ratelimit-reset": "0.6"})
    task = asyncio.create_task(rig.client.send_card("oc_busy", CARD))
    await fake.wait_for(lambda f: f.calls_to(SEND))
    await asyncio.sleep(0.05)
    # Another chat is not held back while the busy one waits.
    started = time.monotonic()
    await rig.client.send_card("oc_calm", CARD)
    assert time.monotonic() - started < 0.3
    assert not task.done()
    # The busy chat's window is paused: a second send to it waits too, behind the retry.
    started = time.monotonic()
    second = await rig.client.send_card("oc_busy", CARD)
    assert time.monotonic() - started >= 0.5
    assert (await task).startswith("om_") and second.startswith("om_")
    busy = [c for c in sends(fake) if c.json["receive_id"] == "oc_busy"]
    assert [c.status for c in busy] == [400, 200, 200]
    assert busy[1].at - busy[0].at >= 0.6
    assert len(fake.sent_messages()) == 3


async def test_platform_limits_are_never_exceeded(fake: FakeLark, http: httpx.AsyncClient) -> None:
    """120 sends to 12 chats: ≤ 5 per chat and ≤ 50 per app in any 1 s window, so Lark never throttles us."""
    fake.enforce_rate_limits = True
    rig = make_client(fake, http)
    chats = [f"oc_{i}" for i in range(12)]
    started = time.monotonic()
    await asyncio.gather(*(rig.client.send_card(chats[i % len(chats)], CARD) for i in range(120)))
    took = time.monotonic() - started
    assert fake.rate_limited == 0
    assert [c.status for c in sends(fake)] == [200] * 120
    delivered = fake.sent_messages()
    assert len(delivered) == 120
    per_chat: dict[str, list[float]] = defaultdict(list)
    for m in delivered:
        per_chat[m["chat_id"]].append(m["at"])
    assert len(per_chat) == 12

    def max_in_window(stamps: list[float]) -> int:
        stamps = sorted(stamps)
        return max(sum(1 for t in stamps[i:] if t - s < 1.0) for i, s in enumerate(stamps))

    assert max(max_in_window(s) for s in per_chat.values()) <= 5
    assert max_in_window([m["at"] for m in delivered]) <= 50
    assert took >= 1.0  # the app limiter really paced 120 sends (> 50/s would have been faster)
    assert took < 5.0


async def test_one_chat_gets_at_most_five_sends_per_window(fake: FakeLark, http: httpx.AsyncClient) -> None:
    fake.enforce_rate_limits = True
    rig = make_client(fake, http)
    started = time.monotonic()
    await asyncio.gather(*(rig.client.send_card("oc_one", CARD) for _ in range(12)))
    assert fake.rate_limited == 0 and len(fake.sent_messages()) == 12
    assert time.monotonic() - started >= 2.0  # 12 sends at 5 per window (> 1 s) need two full windows


# -- errors that must not be retried ---------------------------------------------------------------------


async def test_too_large_card_fails_with_230025_without_retry(fake: FakeLark, http: httpx.AsyncClient) -> None:
    rig = make_client(fake, http)
    huge = card(T("Huge", "巨大"), [markdown(T.same("x" * 16_000)), markdown(T.same("y" * 16_000))])
    with pytest.raises(LarkApiError) as err:
        await rig.client.send_card("oc_1", huge)
    assert err.value.code == 230025
    assert len(sends(fake)) == 1
    assert fake.sent_messages() == []


@pytest.mark.parametrize("code", [99991672, 99991403, 230002, 230099])
async def test_permanent_errors_are_not_retried(fake: FakeLark, http: httpx.AsyncClient, code: int) -> None:
    rig = make_client(fake, http)
    fake.fail_next(SEND, status=400, code=code)
    with pytest.raises(LarkApiError) as err:
        await rig.client.send_card("oc_1", CARD)
    assert err.value.code == code
    assert err.value.chat_unavailable is (code == 230002)
    assert len(sends(fake)) == 1


async def test_overloaded_11232_is_retried_with_backoff(fake: FakeLark, http: httpx.AsyncClient) -> None:
    clock = FakeClock()
    rig = make_client(fake, http, clock=clock)
    fake.fail_next(SEND, status=400, code=11232, times=2)
    assert (await rig.client.send_card("oc_1", CARD)).startswith("om_")
    assert [c.status for c in sends(fake)] == [400, 400, 200]
    assert clock.monotonic() - 1000.0 > 0.2  # it backed off (on the injected clock)


# -- reply, uuid, delayed update --------------------------------------------------------------------------


async def test_reply_and_send_carry_a_stable_uuid(fake: FakeLark, http: httpx.AsyncClient) -> None:
    rig = make_client(fake, http)
    fake.register_message("om_parent", "oc_1")
    fake.fail_next(SEND, status=429, code=99991400, headers={"x-ogw-ratelimit-reset": "0"})
    a = await rig.client.reply_card("om_parent", CARD, chat_id="oc_1", uuid="re-om_parent")
    b = await rig.client.reply_card("om_parent", CARD, chat_id="oc_1", uuid="re-om_parent")
    assert a == b
    [msg] = fake.sent_messages()
    assert msg["kind"] == "reply" and msg["reply_to"] == "om_parent" and msg["chat_id"] == "oc_1"
    assert {c.json["uuid"] for c in fake.calls_to("/reply")} == {"re-om_parent"}
    long_uuid = "u" * 80
    await rig.client.send_card("oc_1", CARD, uuid=long_uuid)
    assert fake.sent_messages()[-1]["uuid"] == long_uuid[:50]


async def test_delayed_update_and_patch(fake: FakeLark, http: httpx.AsyncClient) -> None:
    rig = make_client(fake, http)
    message_id = await rig.client.send_card("oc_1", CARD)
    new = help_card([])
    await rig.client.patch_card(message_id, new)
    await rig.client.delayed_update("c-token", new)
    await rig.client.delayed_update("c-token", new)
    with pytest.raises(LarkApiError) as err:  # a token is good for two updates
        await rig.client.delayed_update("c-token", new)
    assert err.value.code == 200830
    assert [p["message_id"] for p in fake.patches()] == [message_id]
    assert len(fake.delayed_updates()) == 2
    assert_fake_cards_valid(fake)


# -- the event loop stays responsive ----------------------------------------------------------------------


async def test_event_loop_is_never_blocked_during_concurrent_sends(fake: FakeLark, http: httpx.AsyncClient) -> None:
    fake.latency = 0.02
    rig = make_client(fake, http)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    # Cold token cache included: the first sends also fetch the token.
    await asyncio.gather(*(rig.client.send_card(f"oc_{i}", CARD) for i in range(50)))
    stop.set()
    await tick
    assert len(fake.sent_messages()) == 50
    assert len(gaps) > 10
    assert max(gaps) < 0.1, f"event loop stalled for {max(gaps) * 1000:.0f} ms"


async def test_a_stale_token_on_the_last_attempt_still_gets_its_one_fresh_token(fake: FakeLark,
                                                                                 http: httpx.AsyncClient) -> None:
    rig = make_client(fake, http, clock=FakeClock(), max_attempts=2)
    fake.fail_next(SEND, status=500, code=11232, times=1)  # attempt 1: overloaded
    fake.fail_next(SEND, status=400, code=99991663, times=1)  # attempt 2: the token expired meanwhile
    message_id = await rig.client.send_card("oc_1", CARD)  # a fresh token, then success
    assert message_id.startswith("om_")
    assert [c.response["code"] for c in sends(fake)] == [11232, 99991663, 0]

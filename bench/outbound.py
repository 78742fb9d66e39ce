"""Outbound benchmark: sending cards to a fake Lark at concurrency 20, ours vs lark-oapi.

    python -m bench.outbound [--messages 400] [--concurrency 20]

Loopback only, about 30 s (most of it the lark-oapi phase and its ~5 s import). The fake Lark
(tests/fakes/lark_api.py, no added latency) runs in a child process pinned to one CPU, so its work
never shows up in the senders' event loop; both senders run, one after the other, in this process
on the other CPU, against the same fake:

* ours: `bot.lark.client.LarkClient.send_card` on one shared `httpx.AsyncClient` (configured as
  bot/server.py does), with `LarkLimits.unlimited()`: the app-wide rate limiter is switched off
  for this measurement only, so what is measured is the client and its transport; measured first,
  before lark_oapi is imported (the bot process never imports it);
* baseline: lark-oapi 1.7.5's own `client.im.v1.message.acreate` with a `CreateMessageRequest`
  (`lark.Client.builder()...domain(fake).build()`), stock.

The same card (cards.help.not_a_command_card, serialised on every send by each client), the same
20 chats round-robin, the same number of messages. Each client first sends one untimed message
(token fetch; for lark-oapi that is blocking `requests` on the loop, reported as "first send
stall"). A ticker task wakes every 5 ms and records its worst lateness: the event-loop stall.

Targets: ours >= 10x lark-oapi acreate sends/s; our worst event-loop stall <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    ChildServer,
    ForeignCpu,
    StallMonitor,
    Verdicts,
    cpu_plan,
    environment_line,
    machine_line,
    ms,
    percentile,
    pin,
    print_table,
)

RATIO_TARGET = 10.0
STALL_TARGET = 0.020


# ----- the fake Lark (child process) ---------------------------------------------------------------


async def fake_lark_server(latency: float) -> AsyncIterator[dict[str, Any]]:
    from tests.fakes.lark_api import FakeLark
    from tests.harness import APP_ID, APP_SECRET

    fake = FakeLark(APP_ID, APP_SECRET)
    fake.latency = latency
    await fake.start()
    yield {"port": int(fake.base_url.rsplit(":", 1)[1])}
    stats = {"sent": len(fake.sent_messages()), "token_requests": fake.token_requests, "calls": len(fake.calls)}
    await fake.close()
    yield stats


# ----- senders ----------------------------------------------------------------------------------

Send = Callable[[int], Awaitable[None]]


@dataclass
class Phase:
    name: str
    sends: int = 0
    errors: int = 0
    seconds: float = math.nan
    latencies: list[float] = field(default_factory=list)
    stall: float = math.nan
    late_ticks: int = 0
    first_send: float = math.nan
    first_stall: float = math.nan
    timed_out: bool = False
    error_sample: str = ""

    @property
    def rate(self) -> float:
        return self.sends / self.seconds if self.seconds else 0.0


async def run_phase(name: str, send: Send, *, messages: int, concurrency: int, timeout: float) -> Phase:
    phase = Phase(name)
    async with StallMonitor() as first:  # warm-up send: token fetch, connection set-up
        t = time.perf_counter()
        await send(-1)
        phase.first_send = time.perf_counter() - t
    phase.first_stall = first.worst
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while counter < messages:
            i = counter
            counter += 1
            t = time.perf_counter()
            try:
                await send(i)
            except Exception as exc:  # counted and shown; the target fails on any error
                phase.errors += 1
                phase.error_sample = phase.error_sample or f"{type(exc).__name__}: {exc}"[:200]
                continue
            phase.latencies.append(time.perf_counter() - t)
            phase.sends += 1

    async with StallMonitor() as monitor:
        t0 = time.perf_counter()
        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(workers, timeout=timeout)
        phase.seconds = time.perf_counter() - t0
        for w in pending:
            w.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        phase.timed_out = bool(pending)
    phase.stall, phase.late_ticks = monitor.worst, monitor.late_over_20ms
    return phase


async def ours(base_url: str, card: dict[str, Any], args: argparse.Namespace) -> Phase:
    import httpx

    from bot.clock import SystemClock
    from bot.lark.client import LarkClient, LarkLimits
    from bot.metrics import Metrics
    from tests.harness import APP_ID, APP_SECRET

    # as bot/server.py builds the shared client
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0),
                                 limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)) as http:
        client = LarkClient(http, domain=base_url, app_id=APP_ID, app_secret=APP_SECRET, clock=SystemClock(),
                            metrics=Metrics(), limits=LarkLimits.unlimited())

        async def send(i: int) -> None:
            message_id = await client.send_card(f"oc_bench_{i % 20}", card)
            if not message_id:
                raise RuntimeError("no message_id")

        return await run_phase("ours: LarkClient.send_card", send, messages=args.messages,
                               concurrency=args.concurrency, timeout=args.timeout)


async def lark_oapi_baseline(base_url: str, card: dict[str, Any], args: argparse.Namespace) -> Phase:
    import lark_oapi as lark
    from lark_oapi.api.im.v1 import CreateMessageRequest, CreateMessageRequestBody

    from tests.harness import APP_ID, APP_SECRET

    client = lark.Client.builder().app_id(APP_ID).app_secret(APP_SECRET).domain(base_url).build()

    async def send(i: int) -> None:
        req = (CreateMessageRequest.builder().receive_id_type("chat_id")
               .request_body(CreateMessageRequestBody.builder().receive_id(f"oc_bench_{i % 20}")
                             .msg_type("interactive").content(json.dumps(card, ensure_ascii=False)).build())
               .build())
        resp = await client.im.v1.message.acreate(req)
        if not resp.success() or not resp.data or not resp.data.message_id:
            raise RuntimeError(f"lark-oapi send failed: code {resp.code} {resp.msg}")

    return await run_phase("lark-oapi message.acreate", send, messages=args.messages,
                           concurrency=args.concurrency, timeout=args.timeout)


async def main_async(args: argparse.Namespace) -> int:
    gen_cpu, fake_cpu, plan = cpu_plan(not args.no_pin)
    pin(gen_cpu)
    from cards.help import not_a_command_card

    card = not_a_command_card()
    print(f"outbound benchmark: {plan} (fake Lark in a child process on the server CPU, latency "
          f"{args.latency * 1000:g} ms); {args.messages} cards per client at concurrency {args.concurrency}; "
          f"card {len(json.dumps(card, ensure_ascii=False))} B")
    print(f"machine: {await machine_line()}")

    async with ChildServer(fake_lark_server, args.latency, cpu=fake_cpu) as fake:
        foreign = ForeignCpu([fake.pid]).start()
        mine = await ours(fake.base_url, card, args)
        # lark-oapi is imported only now: the bot process never loads it (its ~11,000 modules would
        # also make every full GC of our phase slower), and its import is kept out of every figure
        t = time.perf_counter()
        await asyncio.to_thread(importlib.import_module, "lark_oapi")
        print(f"import lark_oapi took {time.perf_counter() - t:.1f} s (between the phases, untimed)")
        sdk = await lark_oapi_baseline(fake.base_url, card, args)
        phases = [mine, sdk]
        other, caveat = environment_line(foreign)
        stats = await fake.stop()
    print(f"\nmachine during the run: {other}")

    print_table(
        "sends to the fake Lark (first send untimed; stall = worst lateness of a 5 ms ticker)",
        ["client", "sends/s", "sent", "errors", "p50", "p99", "worst stall", "ticks >20ms", "first send",
         "first send stall"],
        [[p.name, f"{p.rate:.1f}", p.sends, p.errors, ms(percentile(p.latencies, 50)),
          ms(percentile(p.latencies, 99)), ms(p.stall), p.late_ticks, ms(p.first_send), ms(p.first_stall)]
         for p in phases])
    expected = mine.sends + sdk.sends + 2
    print(f"\nfake Lark: {stats.get('sent')} messages delivered (expect {expected}), "
          f"{stats.get('token_requests')} token requests")
    for p in phases:
        if p.error_sample:
            print(f"{p.name}: first error: {p.error_sample}")
        if p.timed_out:
            print(f"{p.name}: stopped after {args.timeout:g} s; rate over the sends that completed")
    valid = stats.get("sent") == expected and mine.errors == 0 and sdk.errors == 0 and not mine.timed_out

    verdicts = Verdicts()
    ratio = mine.rate / sdk.rate if sdk.rate else math.inf
    verdicts.add(f"outbound throughput >= {RATIO_TARGET:g}x lark-oapi acreate", valid and ratio >= RATIO_TARGET,
                 f"{mine.rate:.0f}/s vs {sdk.rate:.1f}/s = {ratio:.1f}x")
    verdicts.add(f"our event-loop stall <= {STALL_TARGET * 1000:g} ms", valid and mine.stall <= STALL_TARGET,
                 f"worst {ms(mine.stall)} (lark-oapi {ms(sdk.stall)})")
    return verdicts.report(caveat if valid else ", ".join(x for x in ("INVALID RUN, see above", caveat) if x))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.outbound", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--messages", type=int, default=400, help="cards per client (default 400)")
    p.add_argument("--concurrency", type=int, default=20, help="concurrent sends (default 20)")
    p.add_argument("--latency", type=float, default=0.0, help="fake Lark latency per request, s (default 0)")
    p.add_argument("--timeout", type=float, default=40.0, help="cap per phase, s (default 40)")
    p.add_argument("--no-pin", action="store_true", help="do not pin this process and the fake to separate CPUs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

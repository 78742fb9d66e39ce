"""Digest fan-out benchmark: one scheduler run sends the daily digest to 1,000 chats at once.

    python -m bench.digest_fanout [--chats 1000]

Loopback only, bounded (each phase is cut off after 150 s; about 90 s in all):

* the real app (`create_app`, a temp SQLite db, the scheduler loop off) with the REAL Lark rate
  limiter, `LarkLimits.platform()` (46/s paced and 1000/min per app, 5 per 1.25 s per chat), GHL in
  single-location mode against an in-process FakeGhl (statistics snapshot taken beforehand, so
  the digest card is the full one, built once and shared by all chats);
* a FakeLark in a child process pinned to its own CPU, with `enforce_rate_limits = True`: it
  answers 429 (99991400) to any send beyond 50 in a sliding second, as Lark does, and counts them;
* 1,000 chats whose digest is due (all within the last few minutes, so none is "missed"): one
  `run_job("digest.send")` claims, sends and records every one of them, exactly as in production.

Measured: wall time of the run against the platform ceiling (1,000 messages at 50/s = 20 s) as a
ratio, the number of 429s the fake gave, the deliveries (exactly one per chat, no uuid replays)
and the busiest sliding second at the fake.

Target: within 10 % of the ceiling (≤ 22 s) with zero 429s; the exit code is 1 if missed.

The limits are production's own (`LarkLimits.platform()`): 46/s paced and 1000/min per app, so
1,000 sends need at least 1000 / 46 = 21.7 s (ratio 1.087) plus the digest work itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import ChildServer, Verdicts, cpu_plan, pin, print_table

CEILING_PER_S = 50.0
RATIO_TARGET = 1.10
PHASE_TIMEOUT = 150.0
LOC = "loc_bench_digest"


# ----- the fake Lark (child process) ---------------------------------------------------------------


def _busiest_second(stamps: list[float]) -> int:
    window: deque[float] = deque()
    best = 0
    for t in sorted(stamps):
        window.append(t)
        while window and t - window[0] >= 1.0:
            window.popleft()
        best = max(best, len(window))
    return best


async def fake_lark_server(_: Any) -> AsyncIterator[dict[str, Any]]:
    import gc

    from tests.fakes.lark_api import FakeLark
    from tests.harness import APP_ID, APP_SECRET

    # The fake timestamps a request when its handler runs; a collector pause over the 1,000 stored
    # cards would release queued requests together and count them as a burst real Lark never sees.
    gc.disable()
    fake = FakeLark(APP_ID, APP_SECRET)
    fake.enforce_rate_limits = True
    await fake.start()
    yield {"port": int(fake.base_url.rsplit(":", 1)[1])}
    delivered = [m for m in fake.sent_messages() if m["kind"] == "send"]
    stamps = [float(m["at"]) for m in delivered]
    stats = {"delivered": len(delivered), "chats": len({m["chat_id"] for m in delivered}),
             "uuids": len({m["uuid"] for m in delivered}), "rate_limited": fake.rate_limited,
             "dedup_hits": fake.dedup_hits, "first": min(stamps, default=0.0), "last": max(stamps, default=0.0),
             "busiest_second": _busiest_second(stamps),
             "send_posts": sum(1 for c in fake.calls if c.method == "POST" and c.path == "/open-apis/im/v1/messages")}
    await fake.close()
    yield stats


# ----- one phase -------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    chats: int
    seconds: float
    sent: int
    rows_sent: int
    fake: dict[str, Any]

    @property
    def ceiling(self) -> float:
        return self.chats / CEILING_PER_S

    @property
    def ratio(self) -> float:
        return self.seconds / self.ceiling


async def run_phase(name: str, chats: int, fake_cpu: int | None) -> Phase:
    from aiohttp import web

    from bot.lark.client import LarkLimits
    from bot.scheduler import scheduler_of
    from bot.server import create_app
    from bot.services import SERVICES
    from bot.stats_history import StatsHistory
    from tests.fakes.ghl_api import FakeGhl, build_statistics
    from tests.harness import make_settings

    async with ChildServer(fake_lark_server, None, cpu=fake_cpu) as lark, FakeGhl() as ghl:
        ghl.add_location(LOC)
        ghl.add_account(LOC, platform="facebook")
        ghl.add_account(LOC, platform="instagram")
        ghl.set_statistics(LOC, build_statistics(posts=21, likes=900, followers=5000, impressions=42_000,
                                                 comments=120, reach=30_000, change=8.0))
        tags = ghl.add_tags(LOC, ["Launch", "Promo", "Behind the scenes"])
        for i in range(12):
            ghl.add_post(LOC, summary=f"post {i}", tags=[tags[i % 3]["_id"]],
                         published_at=datetime.now(UTC) - timedelta(hours=6 * i + 1))
        with tempfile.TemporaryDirectory() as tmp:
            settings = make_settings(Path(tmp) / "bot.db", lark.base_url, ghl_api_base=ghl.base_url,
                                     ghl_private_token=ghl.add_private_token(LOC), ghl_location_id=LOC,
                                     scheduler_enabled=False, log_level="WARNING")
            runner = web.AppRunner(create_app(settings, lark_limits=LarkLimits.platform()))
            await runner.setup()  # the app's start-up: store, clients, scheduler (loop off)
            try:
                svc = runner.app[SERVICES]
                now = time.time()
                assert await StatsHistory(svc).take(LOC, now - 600) is not None
                hhmm = datetime.fromtimestamp(now - 600, UTC).strftime("%H:%M")  # due 6–9 min ago
                await svc.db.executemany(
                    "INSERT INTO digest_schedules (chat_id, hhmm, tz, enabled, updated_by, updated_at)"
                    " VALUES (?, ?, 'UTC', 1, 'bench', ?)",
                    [(f"oc_bench_{i:05d}", hhmm, now - 86400) for i in range(chats)])
                await svc.lark.tenant_token()  # token fetch outside the timed run
                started = time.perf_counter()
                run = await asyncio.wait_for(scheduler_of(svc).run_job("digest.send"), PHASE_TIMEOUT)
                seconds = time.perf_counter() - started
                if run.outcome != "ok":
                    raise RuntimeError(f"digest run ended {run.outcome}: {run.result!r}")
                row = await svc.db.fetchone("SELECT COUNT(*) AS n FROM digest_sends WHERE status='sent'")
                rows_sent = int(row["n"]) if row else 0
                sent = int(getattr(run.result, "sent", 0))
            finally:
                await runner.cleanup()
        fake = await lark.stop()
    return Phase(name, chats, seconds, sent, rows_sent, fake)


# ----- main ------------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> int:
    gen_cpu, fake_cpu, plan = cpu_plan()
    pin(gen_cpu)
    print(f"digest fan-out to {args.chats} chats; {plan}", flush=True)
    phases = [await run_phase("LarkLimits.platform()", args.chats, fake_cpu)]

    rows = []
    for p in phases:
        f = p.fake
        rows.append([p.name, f"{p.seconds:.2f} s", f"{p.ceiling:.1f} s", f"{p.ratio:.3f}", f["rate_limited"],
                     f"{f['delivered']} / {f['chats']} chats", f["dedup_hits"], f["busiest_second"],
                     f"{f['last'] - f['first']:.2f} s"])
    print_table("Digest fan-out (one scheduler run)",
                ["limits", "run time", "ceiling", "ratio", "429s", "delivered", "uuid replays", "busiest 1 s",
                 "first→last delivery"], rows)

    main = phases[0]
    f = main.fake
    print(f"\nceiling: {main.chats} messages at {CEILING_PER_S:.0f}/s = {main.ceiling:.1f} s; "
          f"target ratio ≤ {RATIO_TARGET:.2f} with zero 429s")
    v = Verdicts()
    v.add("every chat gets exactly one digest", f["delivered"] == main.chats == f["chats"] == f["uuids"]
          and main.sent == main.rows_sent == main.chats and f["dedup_hits"] == 0,
          f"{f['delivered']} delivered to {f['chats']} chats, {main.rows_sent} rows sent, {f['dedup_hits']} replays")
    v.add("zero 429s from the fake Lark", f["rate_limited"] == 0, f"{f['rate_limited']} throttled answers")
    v.add(f"run time within {RATIO_TARGET - 1:.0%} of the {main.ceiling:.0f} s platform ceiling",
          main.ratio <= RATIO_TARGET, f"{main.seconds:.2f} s, ratio {main.ratio:.3f}")
    return v.report()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chats", type=int, default=1000)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

"""The scheduler: store leases, due jobs, lifecycle, and the statistics snapshot job (store + prune)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.clock import FakeClock
from bot.scheduler import Job, Scheduler, scheduler_of
from bot.store.db import Database
from bot.store.leases import Lease, LeaseLost, LeaseStore
from bot.store.snapshots import SnapshotStore
from tests.fakes.ghl_api import FakeGhl, build_statistics, spec_checked_ghl
from tests.harness import BotHarness
from tests.test_digest_schedule import LOC, digest_bot

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    c = FakeClock()
    c.set(DAY0)
    return c


@pytest.fixture
async def two_dbs(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two connections to one database file: two processes, as far as SQLite is concerned."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = await Database.open(url)
    b = await Database.open(url)
    yield a, b
    await a.close()
    await b.close()


# ----- leases -------------------------------------------------------------------------------------


async def test_lease_acquire_renew_release_and_expiry(two_dbs: tuple[Database, Database], clock: FakeClock) -> None:
    a, b = LeaseStore(two_dbs[0], clock.time), LeaseStore(two_dbs[1], clock.time)
    assert await a.acquire("job:x", "A", 60)
    assert not await b.acquire("job:x", "B", 60)  # held
    assert await a.acquire("job:x", "A", 60)  # re-entry by the holder extends it
    clock.advance(50)
    assert await a.renew("job:x", "A", 60)  # now expires at +110
    clock.advance(50)
    assert not await b.acquire("job:x", "B", 60)  # still held thanks to the renewal
    clock.advance(11)
    assert await b.acquire("job:x", "B", 60)  # expired: taken over
    assert not await a.renew("job:x", "A", 60)  # the old holder learns it lost it
    assert not await a.release("job:x", "A")  # and cannot release someone else's lease
    row = await b.get("job:x")
    assert row is not None and row.holder == "B"
    assert await b.release("job:x", "B")
    assert await a.acquire("job:x", "A", 60)


async def test_concurrent_acquires_have_one_winner(two_dbs: tuple[Database, Database], clock: FakeClock) -> None:
    stores = [LeaseStore(db, clock.time) for db in two_dbs for _ in range(5)]
    wins = await asyncio.gather(*(s.acquire("job:race", f"H{i}", 60) for i, s in enumerate(stores)))
    assert sum(wins) == 1


async def test_lease_keep_renews_lazily_and_detects_loss(two_dbs: tuple[Database, Database],
                                                         clock: FakeClock) -> None:
    a, b = LeaseStore(two_dbs[0], clock.time), LeaseStore(two_dbs[1], clock.time)
    assert await a.acquire("job:y", "A", 90)
    lease = Lease(a, "job:y", "A", 90, clock.time)
    clock.advance(20)
    await lease.keep()  # < ttl/3: no write
    assert (await a.get("job:y")).expires_at == DAY0.timestamp() + 90  # type: ignore[union-attr]
    clock.advance(20)
    await lease.keep()  # renewed
    assert (await a.get("job:y")).expires_at == clock.time() + 90  # type: ignore[union-attr]
    clock.advance(91)
    assert await b.acquire("job:y", "B", 90)
    clock.advance(31)
    with pytest.raises(LeaseLost):
        await lease.keep()
    with pytest.raises(LeaseLost):
        await lease.keep()
    await lease.release()  # a lost lease is not released (it is someone else's)
    assert (await b.get("job:y")).holder == "B"  # type: ignore[union-attr]


# ----- the scheduler ------------------------------------------------------------------------------


class Recorder:
    def __init__(self, clock: FakeClock, *, fail: bool = False, steal: LeaseStore | None = None) -> None:
        self.clock, self.fail, self.steal = clock, fail, steal
        self.runs: list[float] = []

    async def __call__(self, now: float, lease: Lease) -> int:
        self.runs.append(now)
        if self.fail:
            raise RuntimeError("boom")
        if self.steal is not None:  # another instance takes the lease over mid-run
            self.clock.advance(lease.ttl + 1)
            assert await self.steal.acquire(lease.name, "thief", 60)
            await lease.keep()
        return len(self.runs)


async def test_tick_runs_due_jobs_under_leases(tmp_path: Path, clock: FakeClock) -> None:
    async with BotHarness.start(tmp_path, clock=clock) as h:
        sched = Scheduler(h.services, holder="me")
        fast, slow = Recorder(clock), Recorder(clock)
        sched.add(Job("fast", 30, fast))
        sched.add(Job("slow", 3600, slow))
        with pytest.raises(ValueError, match="already"):
            sched.add(Job("fast", 1, fast))
        runs = await sched.tick()  # first tick: everything (catch-up on start)
        assert [(r.name, r.outcome, r.result) for r in runs] == [("fast", "ok", 1), ("slow", "ok", 1)]
        clock.advance(29)
        assert await sched.tick() == []
        clock.advance(1)
        assert [r.name for r in await sched.tick()] == ["fast"]
        assert await sched.leases.get("job:fast") is None  # released after each run
        assert (await sched.run_job("slow")).outcome == "ok"  # run now, due or not
        assert len(slow.runs) == 2

        other = Scheduler(h.services, holder="other")
        other.add(Job("fast", 30, Recorder(clock)))
        assert await other.leases.acquire("job:fast", "other", 120)  # the other instance is running it
        clock.advance(30)
        [busy] = await sched.tick()
        assert busy.outcome == "busy" and len(fast.runs) == 2
        assert sched.job("fast").next_due == clock.time() + 30
        clock.advance(121)  # the other instance died holding it: its lease expires
        [ok] = await sched.tick()
        assert ok.outcome == "ok" and len(fast.runs) == 3


async def test_failing_and_lease_losing_jobs(tmp_path: Path, clock: FakeClock) -> None:
    async with BotHarness.start(tmp_path, clock=clock) as h:
        sched = Scheduler(h.services, holder="me")
        sched.add(Job("bad", 3600, Recorder(clock, fail=True)))
        sched.add(Job("robbed", 3600, Recorder(clock, steal=LeaseStore(h.services.db, clock.time)), lease_ttl=60))
        start = clock.time()
        bad, robbed = await sched.tick()
        assert bad.outcome == "error" and isinstance(bad.result, RuntimeError)
        assert sched.job("bad").next_due == start + 300  # retried sooner than the interval
        assert await sched.leases.get("job:bad") is None
        assert robbed.outcome == "lost"
        assert (await sched.leases.get("job:robbed")).holder == "thief"  # type: ignore[union-attr]


async def test_stop_lets_a_tick_finish_then_cancels(tmp_path: Path) -> None:
    async with BotHarness.start(tmp_path) as h:  # system clock: the loop really sleeps
        sched = Scheduler(h.services, holder="me")
        started, release = asyncio.Event(), asyncio.Event()
        finished: list[str] = []

        async def slow(now: float, lease: Lease) -> None:
            started.set()
            await release.wait()
            finished.append("done")

        sched.add(Job("slow", 3600, slow))
        sched.start()
        await asyncio.wait_for(started.wait(), 5)
        stopping = asyncio.create_task(sched.stop(timeout=5))
        await asyncio.sleep(0.05)
        release.set()
        await stopping
        assert finished == ["done"] and not sched.running

        started.clear()
        release.clear()
        sched2 = Scheduler(h.services, holder="me2")
        sched2.add(Job("stuck", 3600, slow))
        sched2.start()
        await asyncio.wait_for(started.wait(), 5)
        await sched2.stop(timeout=0.05)  # drained: cancelled after the timeout
        assert not sched2.running and finished == ["done"]
        assert await sched2.leases.get("job:stuck") is None  # released on cancellation


async def test_server_starts_and_stops_the_scheduler(tmp_path: Path) -> None:
    async with BotHarness.start(tmp_path, scheduler_enabled=True) as h:
        sched = scheduler_of(h.services)
        assert sched.running
        assert {"stats.snapshot", "digest.send"} <= {j.name for j in sched.jobs}
        for _ in range(100):
            if all(j.next_due > 0 for j in sched.jobs):
                break
            await asyncio.sleep(0.01)
        assert all(j.next_due > 0 for j in sched.jobs)  # the first tick ran at start
    assert not sched.running
    async with BotHarness.start(tmp_path) as h:  # tests: the loop is off, ticks are explicit
        assert not scheduler_of(h.services).running


# ----- the snapshot job ---------------------------------------------------------------------------


@pytest.fixture
async def ghl(clock: FakeClock) -> AsyncIterator[FakeGhl]:
    async with spec_checked_ghl(clock) as fake:
        fake.add_location(LOC)
        fake.add_account(LOC, platform="facebook")
        fake.add_tags(LOC, ["Promo", "Launch"])
        fake.set_statistics(LOC, build_statistics(impressions=700, posts=7))
        yield fake


def stats_calls(ghl: FakeGhl) -> int:
    return sum(1 for c in ghl.calls if c.path.endswith("/statistics"))


async def test_snapshot_job_stores_one_per_day_skips_fresh_and_prunes(tmp_path: Path, clock: FakeClock,
                                                                      ghl: FakeGhl) -> None:
    async with digest_bot(tmp_path, clock, ghl=ghl, stats_retention_days=3) as h:
        sched = scheduler_of(h.services)
        store = SnapshotStore(h.services.db)
        snap = await sched.run_job("stats.snapshot")
        assert snap.outcome == "ok" and snap.result["stored"] == 1  # type: ignore[index]
        assert stats_calls(ghl) == 1
        tag_rows = await h.services.db.fetchall("SELECT name FROM tag_cache WHERE location_id=?", (LOC,))
        assert sorted(r["name"] for r in tag_rows) == ["Launch", "Promo"]  # refreshed alongside
        assert any(c.path.endswith("/tags") for c in ghl.calls)

        clock.advance(600)  # a restart or a second instance within the hour: nothing is doubled
        again = await sched.run_job("stats.snapshot")
        assert again.result["fresh"] == 1 and stats_calls(ghl) == 1  # type: ignore[index]

        clock.advance(3000)  # next hour, same day: the day's snapshot is replaced by the newer one
        ghl.set_statistics(LOC, build_statistics(impressions=1400, posts=7))
        await sched.run_job("stats.snapshot")
        assert stats_calls(ghl) == 2 and await store.count(LOC) == 1
        latest = await store.latest(LOC)
        assert latest is not None and '"impressions":1400' in latest.payload.replace(" ", "")
        assert latest.day == "2026-03-01" and latest.taken_at == clock.time()

        for day in range(1, 6):
            clock.set(DAY0 + timedelta(days=day, hours=2))
            await sched.run_job("stats.snapshot")
        rows = await h.services.db.fetchall("SELECT day FROM stats_snapshots ORDER BY day")
        assert [r["day"] for r in rows] == ["2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"]  # 3-day retention

        ghl.fail_next("/statistics", 500, times=10)
        clock.advance(3600)
        failed = await sched.run_job("stats.snapshot")
        assert failed.outcome == "ok" and failed.result["error"] == 1  # type: ignore[index]
        audit = await h.services.db.fetchall("SELECT outcome FROM audit WHERE kind='stats' ORDER BY id")
        assert audit[-1]["outcome"] == "error" and audit[0]["outcome"] == "ok"


async def test_snapshot_job_without_ghl_only_prunes(tmp_path: Path, clock: FakeClock) -> None:
    async with BotHarness.start(tmp_path, clock=clock) as h:
        run = await scheduler_of(h.services).run_job("stats.snapshot")
        assert run.outcome == "ok" and run.result == {"stored": 0, "fresh": 0, "no_data": 0, "error": 0,
                                                      "pruned": 0}


async def test_another_job_can_be_added_through_the_hook(tmp_path: Path, clock: FakeClock) -> None:
    async with BotHarness.start(tmp_path, clock=clock) as h:
        sched = scheduler_of(h.services)
        polled = Recorder(clock)
        sched.add(Job("extra.job", 600, polled, lease_ttl=300))
        names = [r.name for r in await sched.tick()]
        assert names[:2] == ["stats.snapshot", "digest.send"] and names[-1] == "extra.job"
        assert polled.runs == [clock.time()]


async def test_prune_job_forgets_dedupe_keys_past_their_ttl_only(tmp_path: Path, clock: FakeClock) -> None:
    async with BotHarness.start(tmp_path, clock=clock) as h:
        svc = h.services
        assert await svc.dedupe.first_time(["e:old"], clock.time())
        clock.advance(svc.dedupe.ttl - 3600)
        assert await svc.dedupe.first_time(["e:recent"], clock.time())
        clock.advance(7200)  # e:old is now past the TTL, e:recent is not
        run = await scheduler_of(svc).run_job("store.prune")
        assert run.outcome == "ok" and run.result == {"dedupe_keys": 1, "oauth_states": 0}
        rows = await svc.db.fetchall("SELECT key FROM dedupe_log")
        assert [r["key"] for r in rows] == ["e:recent"]


async def test_a_stuck_job_does_not_hold_back_another_due_job(tmp_path: Path, clock: FakeClock) -> None:
    async with BotHarness.start(tmp_path, clock=clock) as h:
        sched = Scheduler(h.services, holder="me")
        release, digest_ran = asyncio.Event(), asyncio.Event()

        async def slow_poll(now: float, lease: Lease) -> str:
            await release.wait()
            return "polled"

        async def digest(now: float, lease: Lease) -> str:
            digest_ran.set()
            return "sent"

        sched.add(Job("autotag.poll", 600, slow_poll))
        sched.add(Job("digest.send", 60, digest))
        tick = asyncio.create_task(sched.tick())
        await asyncio.wait_for(digest_ran.wait(), 5)  # while the poll is still stuck
        assert not tick.done()
        release.set()
        runs = await tick
        assert [(r.name, r.result) for r in runs] == [("autotag.poll", "polled"), ("digest.send", "sent")]

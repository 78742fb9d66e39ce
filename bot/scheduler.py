"""Periodic jobs with an injected clock: statistics snapshots, digests (and, next, post polling).

    sched = build_scheduler(svc)        # the default jobs (see `default_jobs`)
    sched.start()                        # the loop: tick, sleep on the injected clock, repeat
    await sched.tick()                   # tests: run whatever is due now, once, no sleeping
    await sched.run_job("digest.send")   # tests: run one job now
    await sched.stop()                   # shutdown: let a running tick finish (bounded), then cancel

Every run of a job happens under a store lease named `job:<name>` (bot/store/leases.py), so a
second instance on the same database skips it while one holds it ("busy"), and a crashed holder's
lease simply expires after its TTL. Long jobs call `lease.keep()` between steps to renew it and
stop if it was lost. Jobs must be idempotent against their own stored state (a snapshot is
skipped while fresh; a digest is one row per chat and date), so a restart never doubles work:
the in-memory `next_due` only spares needless runs, it is not what keeps them single.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.clock import Clock
from bot.services import Services
from bot.store.leases import Lease, LeaseLost, LeaseStore

log = logging.getLogger("bot.scheduler")

JobFn = Callable[[float, Lease], Awaitable[object]]
EXTRA = "scheduler"  # Services.extras key
DIGEST_TICK_SECONDS = 30.0
LOOP_MAX_SLEEP = 30.0
RETRY_AFTER_ERROR = 300.0
RETRY_WHEN_BUSY = 60.0


@dataclass
class Job:
    name: str
    interval: float  # seconds between runs
    run: JobFn  # (now, lease) -> anything (kept in `last_result`, for tests and logs)
    lease_ttl: float = 120.0  # renewed by `lease.keep()`; a crashed holder blocks others this long at most
    next_due: float = 0.0  # in memory: 0 = at the first tick (catch-up on start)
    last_result: object = None


@dataclass(frozen=True)
class JobRun:
    name: str
    outcome: str  # "ok", "busy" (another holder has the lease), "lost" (lease taken over mid-run), "error"
    result: object = None


@dataclass
class Scheduler:
    svc: Services
    jobs: list[Job] = field(default_factory=list)
    holder: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}")
    max_sleep: float = LOOP_MAX_SLEEP

    def __post_init__(self) -> None:
        self.leases = LeaseStore(self.svc.db, self.svc.clock.time)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._busy = False

    @property
    def clock(self) -> Clock:
        return self.svc.clock

    def add(self, job: Job) -> Job:
        """Register another periodic job (e.g. the auto-tagging post poller). Names are unique."""
        if any(j.name == job.name for j in self.jobs):
            raise ValueError(f"job {job.name!r} already registered")
        self.jobs.append(job)
        return job

    def job(self, name: str) -> Job:
        for j in self.jobs:
            if j.name == name:
                return j
        raise KeyError(name)

    # -- running ------------------------------------------------------------------------------

    async def tick(self, now: float | None = None) -> list[JobRun]:
        """Run every job that is due at `now` (default: the clock), side by side: each holds its own
        lease, and a long auto-tag poll or snapshot must not hold back a digest that is due."""
        now = self.clock.time() if now is None else now
        return list(await asyncio.gather(*(self._run(job, now) for job in list(self.jobs) if job.next_due <= now)))

    async def run_job(self, name: str, now: float | None = None) -> JobRun:
        """Run one job now, due or not (still under its lease)."""
        return await self._run(self.job(name), self.clock.time() if now is None else now)

    async def _run(self, job: Job, now: float) -> JobRun:
        lease_name = f"job:{job.name}"
        if not await self.leases.acquire(lease_name, self.holder, job.lease_ttl):
            job.next_due = now + min(job.interval, RETRY_WHEN_BUSY)
            return JobRun(job.name, "busy")
        lease = Lease(self.leases, lease_name, self.holder, job.lease_ttl, self.clock.time)
        try:
            result = await job.run(now, lease)
        except LeaseLost:
            log.warning("job lease lost mid-run", extra={"job": job.name})
            job.next_due = now + min(job.interval, RETRY_WHEN_BUSY)
            return JobRun(job.name, "lost")
        except Exception as exc:
            log.error("job failed", extra={"job": job.name}, exc_info=exc)
            job.next_due = now + min(job.interval, RETRY_AFTER_ERROR)
            return JobRun(job.name, "error", exc)
        finally:
            await asyncio.shield(lease.release())
        job.next_due = now + job.interval
        job.last_result = result
        return JobRun(job.name, "ok", result)

    # -- the loop -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="scheduler")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _loop(self) -> None:
        while not self._stopping:
            self._busy = True
            try:
                await self.tick()
            except Exception as exc:  # a store hiccup must not end the loop
                log.error("scheduler tick failed", exc_info=exc)
            finally:
                self._busy = False
            if self._stopping:
                break
            await self.clock.sleep(self._sleep_for())

    def _sleep_for(self) -> float:
        now = self.clock.time()
        soonest = min((j.next_due for j in self.jobs), default=now + self.max_sleep)
        return max(1.0, min(self.max_sleep, soonest - now))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop: a tick in progress gets `timeout` seconds to finish, then is cancelled."""
        self._stopping = True
        task, self._task = self._task, None
        if task is None:
            return
        if not self._busy:
            task.cancel()
        _, pending = await asyncio.wait({task}, timeout=timeout)
        if pending:
            log.warning("scheduler tick still running at shutdown: cancelled")
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def default_jobs(svc: Services) -> list[Job]:
    """The bot's periodic jobs. Add new ones here (or `scheduler_of(svc).add(...)` from a start
    hook), e.g. `Job("autotag.poll", 600, poller.run, lease_ttl=300)` for auto-tagging: `run(now,
    lease)` should call `await lease.keep()` between locations and be idempotent on its own
    cursor (`post_cursors`, `seen_posts`)."""
    from bot import housekeeping
    from bot.autotag.poll import POLL_INTERVAL_S, POLL_LEASE_TTL_S, PollJob
    from bot.digest import digest_service
    from bot.stats_history import StatsHistory

    history = StatsHistory(svc)
    return [
        Job("stats.snapshot", float(svc.settings.snapshot_interval_seconds), history.run, lease_ttl=600.0),
        Job("digest.send", DIGEST_TICK_SECONDS, digest_service(svc).run, lease_ttl=120.0),
        Job("autotag.poll", POLL_INTERVAL_S, PollJob(svc).run, lease_ttl=POLL_LEASE_TTL_S),
        Job("store.prune", 3600.0, functools.partial(housekeeping.prune, svc), lease_ttl=300.0),
    ]


def build_scheduler(svc: Services) -> Scheduler:
    sched = Scheduler(svc, default_jobs(svc))
    svc.extras[EXTRA] = sched
    return sched


def scheduler_of(svc: Services) -> Scheduler:
    found = svc.extras.get(EXTRA)
    if not isinstance(found, Scheduler):
        raise RuntimeError("no scheduler in this app")
    return found

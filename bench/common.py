"""Shared pieces of the benchmarks: percentiles, a loop-stall monitor, CPU pinning and accounting,
servers in child processes, and the results printer / verdicts.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# ----- statistics -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


# ----- event-loop stalls ----------------------------------------------------------------------


class StallMonitor:
    """A ticker that wakes every `interval` s and records how late it woke (worst lateness = worst stall).

        async with StallMonitor() as mon:
            ...
        mon.worst  # seconds
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.worst = 0.0
        self.ticks = 0
        self.late_over_20ms = 0
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        self.worst, self.ticks, self.late_over_20ms = 0.0, 0, 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            late = loop.time() - expected
            self.ticks += 1
            if late > 0.020:
                self.late_over_20ms += 1
            self.worst = max(self.worst, late)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="stall monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> StallMonitor:
        self.start()
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# ----- CPUs -----------------------------------------------------------------------------------


def cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def pin(cpu: int | None) -> None:
    """Pin this process (all its threads created afterwards) to one CPU, where the OS allows it."""
    if cpu is None:
        return
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {cpu})


def cpu_plan(enabled: bool = True) -> tuple[int | None, int | None, str]:
    """(CPU for the load generator / client, CPU for the server child, description)."""
    if not enabled:
        return None, None, "no CPU pinning (generator and server scheduled freely)"
    available = cpus()
    if len(available) >= 2:
        return available[0], available[1], f"generator pinned to CPU {available[0]}, server to CPU {available[1]}"
    return None, None, "only one CPU available: generator and server share it (figures are pessimistic)"


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc; NaN elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return math.nan


@dataclass
class CpuWindow:
    """CPU used by a process over a wall-clock window, as a fraction of one core."""

    pid: int
    _cpu0: float = field(init=False, default=0.0)
    _t0: float = field(init=False, default=0.0)

    def start(self) -> None:
        self._cpu0, self._t0 = process_cpu_seconds(self.pid), time.perf_counter()

    def utilisation(self) -> float:
        return (process_cpu_seconds(self.pid) - self._cpu0) / max(1e-9, time.perf_counter() - self._t0)


def _busy_jiffies() -> int:
    """user + nice + system jiffies of all CPUs since boot, from /proc/stat (irq/softirq time, which
    our own loopback traffic causes but is charged to no process, is left out)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2]


class ForeignCpu:
    """CPU used by processes other than ours during a window, in cores (other sessions' tests, ...).

    The benchmarks need the machine to themselves; when this is well above 0 the figures are
    polluted and the printer says so.
    """

    def __init__(self, child_pids: Sequence[int] = ()) -> None:
        self.pids = [os.getpid(), *child_pids]
        self._t0 = 0.0
        self._busy0 = -1
        self._ours0 = 0.0

    def _ours(self) -> float:
        return sum(x for x in (process_cpu_seconds(p) for p in self.pids) if not math.isnan(x))

    def start(self) -> ForeignCpu:
        with contextlib.suppress(OSError):
            self._busy0 = _busy_jiffies()
        self._ours0, self._t0 = self._ours(), time.perf_counter()
        return self

    def cores(self) -> float:
        if self._busy0 < 0:
            return math.nan
        busy = (_busy_jiffies() - self._busy0) / _CLK_TCK
        return max(0.0, busy - (self._ours() - self._ours0)) / max(1e-9, time.perf_counter() - self._t0)


def cpu_pressure() -> str:
    """The kernel's CPU pressure line (`some avg10=…`), or "" where there is none."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().strip()
    except OSError:
        return ""


async def idle_stall_floor(seconds: float = 1.0) -> float:
    """Worst lateness of the stall ticker on an idle loop: the machine's own noise floor."""
    async with StallMonitor() as mon:
        await asyncio.sleep(seconds)
    return mon.worst


def spin_cpu_share(seconds: float = 0.5) -> float:
    """Share of wall time a busy loop actually gets on this CPU (< 1: the VM is throttled or shared)."""
    w, c = time.perf_counter(), time.process_time()
    while time.perf_counter() - w < seconds:
        pass
    return (time.process_time() - c) / (time.perf_counter() - w)


async def machine_line() -> str:
    """The noise floor, measured before anything else runs."""
    floor = await idle_stall_floor()
    return (f"idle-loop worst stall {ms(floor)}, a busy loop gets {spin_cpu_share():.0%} of its CPU, "
            f"{cpu_pressure() or 'no CPU pressure data'}")


BUSY_CORES = 0.15


def environment_line(foreign: ForeignCpu) -> tuple[str, str]:
    """(a line on what else ran during the measurement, a caveat for the verdicts or "")."""
    other = foreign.cores()
    if math.isnan(other):
        return "other processes' CPU use unknown (no /proc/stat)", ""
    text = f"other processes used {other:.2f} cores during the run"
    if other > BUSY_CORES:
        return text + " -- the machine was not quiet; these figures are polluted, run again", \
            f"machine busy: {other:.2f} other cores"
    return text, ""


# ----- servers in a child process -------------------------------------------------------------

# A server target: an async generator function taking one picklable argument. It yields once when
# listening (a dict with at least "port"), is resumed when the parent says stop, cleans up, and
# yields once more with its final stats (a dict). The child also runs a StallMonitor whose worst
# figure the parent can read and reset between phases.
ServerTarget = Callable[[Any], AsyncIterator[dict[str, Any]]]


def _child_main(target: ServerTarget, arg: Any, conn: Any, cpu: int | None, log_path: str | None) -> None:
    pin(cpu)
    if log_path:
        sys.stderr = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the child
    asyncio.run(_child_async(target, arg, conn))


async def _child_async(target: ServerTarget, arg: Any, conn: Any) -> None:
    gen = target(arg)
    info = await gen.__anext__()
    monitor = StallMonitor()
    monitor.start()
    conn.send(info)
    while True:
        cmd = await asyncio.to_thread(conn.recv)
        if cmd == "stall":  # worst stall since the last reset, then reset
            conn.send({"worst_stall": monitor.worst, "ticks": monitor.ticks})
            monitor.reset()
        elif cmd == "stop":
            await monitor.stop()
            stats = await gen.__anext__()
            with contextlib.suppress(StopAsyncIteration):
                await gen.__anext__()
            conn.send(stats)
            return


class ChildServer:
    """Run a ServerTarget in a spawned process (own interpreter, own CPU), talk to it over a pipe."""

    def __init__(self, target: ServerTarget, arg: Any, *, cpu: int | None, log_path: str | None = None,
                 start_timeout: float = 30.0) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(target, arg, child_conn, cpu, log_path), daemon=True)
        self._start_timeout = start_timeout
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.info['port']}"

    async def _recv(self, timeout: float) -> Any:
        try:
            ready = await asyncio.to_thread(self._conn.poll, timeout)
            if not ready:
                raise TimeoutError("benchmark server child did not answer")
            return self._conn.recv()
        except EOFError:
            raise RuntimeError(f"benchmark server child exited (code {self._proc.exitcode}); see its log") from None

    async def start(self) -> ChildServer:
        self._proc.start()
        self.info = await self._recv(self._start_timeout)
        return self

    async def worst_stall(self) -> float:
        """The child's worst event-loop stall since the previous call (resets it)."""
        self._conn.send("stall")
        return float((await self._recv(10.0))["worst_stall"])

    async def stop(self) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        if self._proc.pid is None:  # never started
            return stats
        if self._proc.is_alive():
            self._conn.send("stop")
            with contextlib.suppress(TimeoutError, RuntimeError):
                stats = await self._recv(30.0)
        await asyncio.to_thread(self._proc.join, 10.0)
        if self._proc.is_alive():  # only the child we started, by its own handle
            self._proc.kill()
            await asyncio.to_thread(self._proc.join, 5.0)
        return stats

    async def __aenter__(self) -> ChildServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


# ----- output ---------------------------------------------------------------------------------


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))


@dataclass
class Verdicts:
    items: list[tuple[str, bool, str]] = field(default_factory=list)

    def add(self, target: str, ok: bool, measured: str) -> None:
        self.items.append((target, ok, measured))

    def report(self, caveat: str = "") -> int:
        """Print one `PASS/FAIL target: measured` line per target; return the process exit code."""
        print()
        for target, ok, measured in self.items:
            print(f"{'PASS' if ok else 'FAIL'} {target}: {measured}" + (f" [{caveat}]" if caveat else ""))
        return 0 if self.items and all(ok for _, ok, _ in self.items) else 1

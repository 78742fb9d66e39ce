"""Background work the server owns: every task is tracked, its failure logged, all drained on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("bot.tasks")
R = TypeVar("R")


class TaskTracker:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def spawn(self, coro: Coroutine[Any, Any, R], *, name: str, awaited: bool = False) -> asyncio.Task[R]:
        """Run `coro` in the background; `awaited=True` when a caller awaits the task and handles its
        failure (then the tracker does not log it a second time)."""
        if self._closing:
            coro.close()
            raise RuntimeError("shutting down: no new background work")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done_awaited if awaited else self._done)
        return task

    def _done_awaited(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task failed", extra={"task": task.get_name()}, exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until no task is running (tests use this instead of sleeping)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def drain(self, timeout: float = 10.0) -> None:
        """Refuse new work, give running tasks `timeout` seconds, then cancel the rest."""
        self._closing = True
        pending = list(self._tasks)
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=timeout)
        for task in still:
            task.cancel()
        if still:
            log.warning("cancelled unfinished background tasks", extra={"count": len(still)})
            await asyncio.gather(*still, return_exceptions=True)

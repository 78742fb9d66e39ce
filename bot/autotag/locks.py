"""In-process single-flight per key (a double click, two polls of one location).

Locks live in the app's `Services` (one event loop per app) in a weak map, so a lock exists
only while someone holds or awaits it.
"""

from __future__ import annotations

import asyncio
import weakref

from bot.services import Services

_EXTRA = "autotag.locks"


def lock_for(services: Services, scope: str, key: str) -> asyncio.Lock:
    locks = services.extras.get(_EXTRA)
    if not isinstance(locks, weakref.WeakValueDictionary):
        locks = weakref.WeakValueDictionary()
        services.extras[_EXTRA] = locks
    lock: asyncio.Lock | None = locks.get((scope, key))
    if lock is None:
        lock = asyncio.Lock()
        locks[(scope, key)] = lock
    return lock

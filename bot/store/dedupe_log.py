"""The durable half of delivery dedupe: an append-only log of keys in SQLite, indexed in memory.

This is Bitcask's layout (an append-only file plus an in-memory "keydir") on top of SQLite. A new
key costs one append at the end of a rowid b-tree, so a commit writes one or two pages however
many keys it holds; a unique index on the keys instead costs a random page per key, which made
dedupe the most expensive step of intake (bench/intake.py). The index of recent keys lives in
this object, rebuilt from the log when it is opened.

Several processes may share the database: every write runs under SQLite's write lock
(`BEGIN IMMEDIATE`), first reads the rows other processes appended since this one last looked,
and only then decides, so two processes never both take the same key.

Not thread-safe and blocking: `bot.store.dedupe.DedupeStore` confines one instance to one thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

SCHEMA = """
CREATE TABLE IF NOT EXISTS dedupe_log (  -- as migration 4 in bot/store/db.py creates it
    seq INTEGER PRIMARY KEY, app_id TEXT NOT NULL, key TEXT NOT NULL, created_at REAL NOT NULL);
"""

NEVER = float("-inf")
Ask = tuple[Sequence[str], float]  # the keys of one delivery, and when it arrived


class DedupeLog:
    def __init__(self, path: str, app_id: str, ttl: float, *, busy_timeout: float = 5.0) -> None:
        self.app_id, self.ttl = app_id, ttl
        self._conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # a commit survives kill -9 (not a power cut)
        if path == ":memory:":  # a private database (file databases get the table by migration)
            self._conn.executescript(SCHEMA)
        self._seen: dict[str, float] = {}  # key -> last recorded, oldest first
        self._cursor = 0  # the highest seq already in _seen
        self._catch_up()

    def _catch_up(self) -> None:
        """Take in the rows appended (by any process) since the last look."""
        rows = self._conn.execute("SELECT seq, app_id, key, created_at FROM dedupe_log WHERE seq > ? ORDER BY seq",
                                  (self._cursor,)).fetchall()
        for seq, app_id, key, at in rows:
            self._cursor = seq
            if app_id == self.app_id and at > self._seen.get(key, NEVER):
                self._seen.pop(key, None)  # re-inserted, so the dict stays in time order
                self._seen[key] = at

    def record(self, asks: Sequence[Ask]) -> list[bool]:
        """Record every key of every delivery, in one transaction; per delivery, True only if none of
        its keys was seen within the TTL (within one call the first delivery to name a key wins)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._catch_up()
            answers: list[bool] = []
            taken: dict[str, float] = {}  # applied to _seen (and the cursor moved) only once committed
            last = self._cursor
            for keys, now in asks:
                cutoff = now - self.ttl
                fresh = [k for k in keys if taken.get(k, self._seen.get(k, NEVER)) < cutoff]
                answers.append(len(fresh) == len(keys))
                for k in fresh:
                    taken[k] = now
            if taken:
                conn.executemany("INSERT INTO dedupe_log (app_id, key, created_at) VALUES (?, ?, ?)",
                                 [(self.app_id, k, at) for k, at in taken.items()])
                last = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._cursor = last
        for k, at in taken.items():
            self._seen.pop(k, None)
            self._seen[k] = at
        return answers

    def prune_end(self, now: float) -> int:
        """Where expiry ends: every row before the returned seq is older than the TTL.

        Rows are appended in time order, so the expired ones are the start of the log (a row that a
        skewed clock put later waits for the next prune). The newest row is never included, so
        SQLite never hands out a seq that was used before."""
        first_fresh = self._conn.execute("SELECT seq FROM dedupe_log WHERE created_at >= ? ORDER BY seq LIMIT 1",
                                         (now - self.ttl,)).fetchone()
        last = self._conn.execute("SELECT max(seq) FROM dedupe_log").fetchone()[0] or 0
        return int(first_fresh[0]) if first_fresh else int(last)

    def delete_before(self, end: int, limit: int) -> int:
        """Delete up to `limit` of the oldest rows with seq < end (short transactions); returns how many."""
        return self._conn.execute("DELETE FROM dedupe_log WHERE seq IN"
                                  " (SELECT seq FROM dedupe_log WHERE seq < ? ORDER BY seq LIMIT ?)",
                                  (end, limit)).rowcount

    def forget_expired(self, now: float) -> int:
        """Drop keys older than the TTL from memory (oldest first, so it stops at the first fresh one)."""
        cutoff = now - self.ttl
        expired = []
        for k, at in self._seen.items():
            if at >= cutoff:
                break
            expired.append(k)
        for k in expired:
            del self._seen[k]
        return len(expired)

    def close(self) -> None:
        self._conn.close()

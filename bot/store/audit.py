"""The audit log: one row per thing the bot did or was asked to do."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.store.db import Database


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    actor: str | None
    chat_id: str | None
    location_id: str | None
    kind: str
    action: str
    detail: dict[str, Any]
    outcome: str


class AuditLog:
    def __init__(self, db: Database, now: Callable[[], float]) -> None:
        self._db, self._now = db, now

    async def record(self, *, kind: str, action: str, outcome: str, actor: str | None = None,
                     chat_id: str | None = None, location_id: str | None = None,
                     detail: dict[str, Any] | None = None) -> None:
        await self._db.execute(
            "INSERT INTO audit (at, actor, chat_id, location_id, kind, action, detail, outcome)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self._now(), actor, chat_id, location_id, kind, action,
             json.dumps(detail or {}, ensure_ascii=False, default=str), outcome))

    async def recent(self, *, chat_id: str | None = None, location_id: str | None = None,
                     kind: str | None = None, limit: int = 20, before_id: int | None = None) -> list[AuditEntry]:
        where, params = self._filters(chat_id, location_id, kind, before_id)
        rows = await self._db.fetchall(
            f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_entry(r) for r in rows]

    async def export_csv(self, *, location_id: str | None = None, kind: str | None = None,
                         limit: int = 100_000) -> str:
        where, params = self._filters(None, location_id, kind, None)
        rows = await self._db.fetchall(f"SELECT * FROM audit {where} ORDER BY id LIMIT ?", (*params, limit))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["id", "at", "actor", "chat_id", "location_id", "kind", "action", "outcome", "detail"])
        for r in rows:
            w.writerow([r["id"], r["at"], r["actor"], r["chat_id"], r["location_id"], r["kind"],
                        r["action"], r["outcome"], r["detail"]])
        return buf.getvalue()

    @staticmethod
    def _filters(chat_id: str | None, location_id: str | None, kind: str | None,
                 before_id: int | None) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for col, val in (("chat_id", chat_id), ("location_id", location_id), ("kind", kind)):
            if val is not None:
                clauses.append(f"{col} = ?")
                params.append(val)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(r["id"], r["at"], r["actor"], r["chat_id"], r["location_id"], r["kind"],
                      r["action"], json.loads(r["detail"] or "{}"), r["outcome"])

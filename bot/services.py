"""Everything a handler may need, built once at start-up by the server and closed on shutdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from aiohttp import web

from bot.clock import Clock
from bot.config import Settings
from bot.lark.client import LarkClient
from bot.metrics import Metrics
from bot.registry import Registry
from bot.store.audit import AuditLog
from bot.store.chats import ChatStore
from bot.store.db import Database
from bot.store.dedupe import DedupeStore
from bot.tasks import TaskTracker

if TYPE_CHECKING:
    from bot.ghl.hub import GhlHub


@dataclass
class Services:
    settings: Settings
    clock: Clock
    db: Database
    http: httpx.AsyncClient
    lark: LarkClient
    tasks: TaskTracker
    metrics: Metrics
    registry: Registry
    audit: AuditLog
    dedupe: DedupeStore
    chats: ChatStore
    ghl: GhlHub | None = None
    extras: dict[str, Any] = field(default_factory=dict)


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)

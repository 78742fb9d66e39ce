"""Prometheus metrics, one registry per app instance (tests run several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter("lark_events_received", "Deliveries accepted on /lark/events", ["type"],
                                       registry=r)
        self.events_rejected = Counter("lark_events_rejected", "Deliveries refused", ["reason"], registry=r)
        self.events_duplicate = Counter("lark_events_duplicate", "Redeliveries dropped by dedupe", ["type"], registry=r)
        self.handler_seconds = Histogram("handler_seconds", "Time to run a command, click or event handler",
                                         ["kind", "name"], registry=r,
                                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.handler_errors = Counter("handler_errors", "Handlers that raised", ["kind", "name"], registry=r)
        self.outbound = Counter("outbound_calls", "Calls to Lark and GHL by outcome", ["api", "op", "outcome"],
                                registry=r)
        self.digests = Counter("digests", "Digest sends by outcome", ["outcome"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

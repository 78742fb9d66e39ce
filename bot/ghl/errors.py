"""Errors raised by the GHL client and token providers, one class per thing the chat should say.

Every error carries the HTTP `status`, a normalised `message` (422 arrays joined with "; "),
GHL's `trace_id` when it sent one, and the `location_id` it concerns. `kind` is a stable
machine name the card renderer switches on. Messages come from GHL's bodies or from us and
never contain tokens.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

__all__ = [
    "GhlAuthError",
    "GhlBadRequest",
    "GhlError",
    "GhlForbidden",
    "GhlNeedsReconnect",
    "GhlNotConnected",
    "GhlRateLimited",
    "GhlUnavailable",
    "error_from_response",
    "normalise_message",
    "parse_retry_after",
    "trace_id_of",
]

MAX_MESSAGE_CHARS = 500
_SCOPE_HINTS = ("not authorized for this scope", "authclass type is not allowed", "scope")


class GhlError(Exception):
    """Base class: something GHL (or our credentials for it) refused."""

    kind: ClassVar[str] = "error"
    hint: ClassVar[str] = "GHL request failed."

    def __init__(
        self,
        status: int,
        message: str,
        *,
        trace_id: str | None = None,
        location_id: str | None = None,
    ) -> None:
        self.status = status
        self.message = message[:MAX_MESSAGE_CHARS]
        self.trace_id = trace_id
        self.location_id = location_id
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f" [location {self.location_id}]" if self.location_id else ""
        trace = f" (traceId {self.trace_id})" if self.trace_id else ""
        return f"GHL {self.status}: {self.message}{where}{trace}"


class GhlAuthError(GhlError):
    """401 after one refresh, or a Private Integration token GHL no longer accepts."""

    kind = "auth"
    hint = "GHL rejected our token: reconnect the app or rotate the Private Integration token."


class GhlNeedsReconnect(GhlError):
    """The refresh token was refused: the installation is marked `needs_reconnect`."""

    kind = "needs_reconnect"
    hint = "The GHL connection expired: an admin must reconnect the sub-account."


class GhlForbidden(GhlError):
    """403, or a token that lacks the scope the endpoint needs."""

    kind = "forbidden"
    hint = "The GHL token lacks a permission (scope) or access to this sub-account."


class GhlRateLimited(GhlError):
    """429 after our bounded retries; `retry_after` is GHL's hint in seconds when known."""

    kind = "rate_limited"
    hint = "GHL is rate-limiting this sub-account; try again shortly."

    def __init__(
        self,
        status: int,
        message: str,
        *,
        trace_id: str | None = None,
        location_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, trace_id=trace_id, location_id=location_id)
        self.retry_after = retry_after


class GhlUnavailable(GhlError):
    """5xx or a network failure after our bounded retries (status 0 = no answer)."""

    kind = "unavailable"
    hint = "GHL is not answering right now; try again later."


class GhlBadRequest(GhlError):
    """Any other 4xx (400, 404, 422…): retrying the same request will not help."""

    kind = "bad_request"
    hint = "GHL refused the request."


class GhlNotConnected(GhlError):
    """We hold no credentials for this location."""

    kind = "not_connected"
    hint = "This sub-account is not connected to the bot yet."

    def __init__(self, location_id: str, message: str | None = None) -> None:
        text = message or "no GHL credentials are stored for this location"
        super().__init__(0, text, location_id=location_id)


def normalise_message(body: Any, fallback: str = "") -> str:
    """GHL's `message` may be a string or (422) a list of strings; OAuth errors use `error*`."""
    if not isinstance(body, Mapping):
        return fallback
    for key in ("message", "error_description", "error", "msg"):
        value = body.get(key)
        if isinstance(value, list):
            parts = [str(v) for v in value if v not in (None, "")]
            if parts:
                return "; ".join(parts)
        elif isinstance(value, str) and value:
            return value
    return fallback


def _json_body(resp: httpx.Response) -> Any:
    try:
        return json.loads(resp.content) if resp.content else None
    except ValueError:
        return None


def trace_id_of(resp: httpx.Response, body: Any = None) -> str | None:
    """GHL puts `traceId` in error bodies; some gateways use a header instead."""
    if isinstance(body, Mapping):
        value = body.get("traceId") or body.get("trace_id")
        if isinstance(value, str) and value:
            return value
    for name in ("x-trace-id", "traceid", "x-request-id"):
        header = resp.headers.get(name)
        if header:
            return str(header)
    return None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date), or None when absent/garbled."""
    raw = headers.get("retry-after") or headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def is_scope_error(status: int, message: str) -> bool:
    """GHL answers a missing scope with 401 "The token is not authorized for this scope."."""
    lowered = message.lower()
    return status in (401, 403) and any(h in lowered for h in _SCOPE_HINTS)


def error_from_response(resp: httpx.Response, *, location_id: str | None = None, now: float | None = None) -> GhlError:
    """The right `GhlError` subclass for a non-2xx answer."""
    body = _json_body(resp)
    status = resp.status_code
    message = normalise_message(body, fallback=resp.reason_phrase or f"HTTP {status}")
    trace = trace_id_of(resp, body)
    if status == 429:
        retry = parse_retry_after(resp.headers, now)
        return GhlRateLimited(status, message, trace_id=trace, location_id=location_id, retry_after=retry)
    cls = _class_for(status, message)
    return cls(status, message, trace_id=trace, location_id=location_id)


def _class_for(status: int, message: str) -> type[GhlError]:
    if is_scope_error(status, message) or status == 403:
        return GhlForbidden
    if status == 401:
        return GhlAuthError
    if status >= 500:
        return GhlUnavailable
    return GhlBadRequest

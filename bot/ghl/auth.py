"""Credentials per GHL location: a static Private Integration token, or OAuth with rotation.

OAuth refresh tokens are single-use (reference 7.3): each refresh spends the stored one and
returns a new pair, so a refresh that is lost or done twice kills the install. Hence:
one refresh at a time per location (asyncio.Lock), re-read the stored pair after taking the
lock, and persist the new pair (one transaction) before anyone uses the new access token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from pydantic import ValidationError

from bot.clock import Clock
from bot.ghl.errors import (
    GhlAuthError,
    GhlBadRequest,
    GhlError,
    GhlNeedsReconnect,
    GhlNotConnected,
    GhlUnavailable,
    error_from_response,
)
from bot.ghl.models import TokenResponse
from bot.store.installations import Installation, InstallationStore

__all__ = [
    "DEFAULT_AUTHORIZE_URL",
    "DEFAULT_SCOPES",
    "DEFAULT_TOKEN_URL",
    "OAuthApp",
    "OAuthTokenProvider",
    "PrivateTokenProvider",
    "TokenProvider",
]

log = logging.getLogger("bot.ghl")

DEFAULT_AUTHORIZE_URL = "https://marketplace.gohighlevel.com/v2/oauth/chooselocation"
DEFAULT_TOKEN_URL = "https://services.leadconnectorhq.com/oauth/token"
DEFAULT_SCOPES: tuple[str, ...] = (
    "socialplanner/tag.readonly",
    "socialplanner/statistics.readonly",
    "socialplanner/account.readonly",
    "socialplanner/post.readonly",
    "socialplanner/post.write",
)
USER_TYPE = "Location"


class TokenProvider(Protocol):
    """Where the client gets a bearer for a location."""

    async def access_token(self, location_id: str) -> str:
        """A token believed valid now (may refresh first)."""
        ...

    async def refreshed_after_401(self, location_id: str, rejected_token: str) -> str | None:
        """A different token after GHL rejected `rejected_token`, or None if none can exist."""
        ...


# ----- Private Integration token ---------------------------------------------------------


class PrivateTokenProvider:
    """One static sub-account token (GHL_PRIVATE_TOKEN + GHL_LOCATION_ID); no refresh cycle."""

    def __init__(self, token: str, location_id: str) -> None:
        if not token:
            raise ValueError("the Private Integration token is empty")
        self._token = token
        self.location_id = location_id

    def __repr__(self) -> str:
        return f"PrivateTokenProvider(location_id={self.location_id!r})"

    async def access_token(self, location_id: str) -> str:
        if location_id != self.location_id:
            raise GhlNotConnected(location_id, "the Private Integration token belongs to another location")
        return self._token

    async def refreshed_after_401(self, location_id: str, rejected_token: str) -> str | None:
        raise GhlAuthError(
            401,
            "GHL rejected the Private Integration token: it was rotated or revoked. "
            "An admin must create a new one (Settings → Private Integrations) and update "
            "GHL_PRIVATE_TOKEN.",
            location_id=location_id,
        )


# ----- OAuth app -------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuthApp:
    """A Marketplace app's credentials and endpoints (URLs configurable, reference 7.1)."""

    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str = DEFAULT_AUTHORIZE_URL
    token_url: str = DEFAULT_TOKEN_URL
    redirect_uri: str = ""
    scopes: tuple[str, ...] = DEFAULT_SCOPES

    def authorize_url_for(self, state: str) -> str:
        """The chooselocation URL (RFC 6749 4.1.1): code flow, space-separated scopes."""
        url: str = prepare_grant_uri(
            self.authorize_url,
            self.client_id,
            "code",
            redirect_uri=self.redirect_uri or None,
            scope=list(self.scopes),
            state=state,
        )
        return url

    def form(self, grant_type: str, **fields: str) -> dict[str, str]:
        body = {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "grant_type": grant_type,
            "user_type": USER_TYPE,
            **fields,
        }
        if self.redirect_uri:
            body["redirect_uri"] = self.redirect_uri
        return body


class _TokenRefused(Exception):
    """The token endpoint answered 400/401 (invalid_grant and friends)."""

    def __init__(self, error: GhlError) -> None:
        super().__init__(error.message)
        self.error = error


class OAuthTokenProvider:
    """Location tokens from the installations table, refreshed single-flight per location."""

    def __init__(
        self,
        app: OAuthApp,
        store: InstallationStore,
        http: httpx.AsyncClient,
        clock: Clock,
        refresh_margin: float = 300,
    ) -> None:
        self._app = app
        self._store = store
        self._http = http
        self._clock = clock
        self._margin = refresh_margin
        self._locks: dict[str, asyncio.Lock] = {}
        # Called once when an installation flips to needs_reconnect (the server wires chat notices in).
        self.on_needs_reconnect: Callable[[str], Awaitable[None]] | None = None

    # ----- TokenProvider -----

    async def access_token(self, location_id: str) -> str:
        inst = await self._load(location_id)
        if self._fresh(inst):
            return inst.access_token
        return await self._refresh(location_id, seen=inst)

    async def refreshed_after_401(self, location_id: str, rejected_token: str) -> str | None:
        inst = await self._load(location_id)
        if inst.access_token != rejected_token and self._fresh(inst):
            return inst.access_token  # someone already replaced the rejected token
        return await self._refresh(location_id, seen=inst)

    # ----- OAuth callback -----

    async def exchange_code(self, code: str) -> Installation:
        """Trade an authorization code for a Location token pair and store it."""
        form = self._app.form("authorization_code", code=code)
        try:
            tok = await self._post_token(form, location_id=None)
        except _TokenRefused as exc:
            err = exc.error
            raise GhlBadRequest(err.status, err.message, trace_id=err.trace_id) from None
        if not tok.location_id or not tok.refresh_token:
            raise GhlBadRequest(400, "GHL returned a company-level token: install the app on a sub-account")
        inst = Installation(
            location_id=tok.location_id,
            company_id=tok.company_id,
            user_id=tok.user_id,
            access_token=tok.access_token,
            refresh_token=tok.refresh_token,
            expires_at=self._clock.time() + tok.expires_in,
            scope=tok.scope,
        )
        saved = await self._store.save(inst)
        log.info("GHL installation stored for location %s", saved.location_id)
        return saved

    # ----- internals -----

    def _fresh(self, inst: Installation) -> bool:
        return inst.seconds_left(self._clock.time()) > self._margin

    async def _load(self, location_id: str) -> Installation:
        inst = await self._store.get(location_id)
        if inst is None:
            raise GhlNotConnected(location_id)
        if not inst.active:
            raise GhlNeedsReconnect(401, "the GHL connection needs to be re-authorised", location_id=location_id)
        return inst

    def _lock(self, location_id: str) -> asyncio.Lock:
        lock = self._locks.get(location_id)
        if lock is None:
            lock = self._locks[location_id] = asyncio.Lock()
        return lock

    async def _refresh(self, location_id: str, *, seen: Installation) -> str:
        async with self._lock(location_id):
            current = await self._load(location_id)
            if current.generation != seen.generation:
                return current.access_token  # another caller refreshed while we waited
            return await self._rotate(current)

    async def _rotate(self, inst: Installation) -> str:
        form = self._app.form("refresh_token", refresh_token=inst.refresh_token)
        try:
            tok = await self._post_token(form, location_id=inst.location_id)
        except _TokenRefused as exc:
            return await self._after_refusal(inst, exc.error)
        refresh = tok.refresh_token or inst.refresh_token
        expires_at = self._clock.time() + tok.expires_in
        stored = await self._store.rotate(
            inst.location_id, inst.generation, tok.access_token, refresh, expires_at, tok.scope
        )
        if stored:
            log.info("GHL token refreshed for location %s", inst.location_id)
            return tok.access_token
        log.warning("GHL installation %s changed during refresh; using the stored pair", inst.location_id)
        return (await self._load(inst.location_id)).access_token

    async def _after_refusal(self, inst: Installation, error: GhlError) -> str:
        """Re-read once (a concurrent rotation may have won), else flag the install."""
        again = await self._store.get(inst.location_id)
        if again is not None and again.active and again.generation != inst.generation:
            return again.access_token
        marked = await self._store.mark_needs_reconnect(inst.location_id, expected_generation=inst.generation)
        if marked and self.on_needs_reconnect is not None:
            try:
                await self.on_needs_reconnect(inst.location_id)
            except Exception:  # telling the chats must never hide the refusal itself
                log.exception("could not announce that location %s needs reconnecting", inst.location_id)
        log.warning(
            "GHL refused the refresh token for location %s (%s, traceId %s): needs reconnect",
            inst.location_id,
            error.message,
            error.trace_id,
        )
        raise GhlNeedsReconnect(
            error.status,
            f"GHL refused the refresh token ({error.message}); reconnect the sub-account",
            trace_id=error.trace_id,
            location_id=inst.location_id,
        )

    async def _post_token(self, form: dict[str, str], *, location_id: str | None) -> TokenResponse:
        try:
            resp = await self._http.post(self._app.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise GhlUnavailable(
                0, f"token endpoint unreachable: {type(exc).__name__}", location_id=location_id
            ) from None
        if resp.status_code in (400, 401):
            raise _TokenRefused(error_from_response(resp, location_id=location_id))
        if not resp.is_success:
            raise error_from_response(resp, location_id=location_id, now=self._clock.time())
        try:
            return TokenResponse.model_validate_json(resp.content)
        except ValidationError:
            raise GhlUnavailable(
                resp.status_code, "token endpoint answered an unexpected body", location_id=location_id
            ) from None

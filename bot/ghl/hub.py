"""Which GHL locations a chat can reach, and the one client that reaches them all.

Two ways in (reference §3, §7): a Private Integration token for one location, available to
every chat; and Marketplace OAuth installations, available to the chats that connected them.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bot.clock import Clock
from bot.config import Settings
from bot.ghl.auth import OAuthApp, OAuthTokenProvider, PrivateTokenProvider
from bot.ghl.client import GhlClient
from bot.ghl.errors import GhlNotConnected
from bot.ghl.tags import TagService
from bot.secrets import SecretBox
from bot.store.chats import ChatStore
from bot.store.db import Database
from bot.store.installations import InstallationStore
from bot.store.oauth_states import OAuthStates
from bot.store.tags import TagStore
from bot.tasks import TaskTracker


@dataclass(frozen=True)
class LocationChoice:
    location_id: str
    name: str
    via: str  # "private" or "oauth"
    status: str  # "active" or "needs_reconnect"


class NoLocation(Exception):
    """The chat has no location it may use (nothing connected, or nothing chosen among several)."""

    def __init__(self, choices: list[LocationChoice]) -> None:
        super().__init__("no GHL location chosen for this chat")
        self.choices = choices


class RoutingTokens:
    """The Private token for its own location; OAuth installations for every other one."""

    def __init__(
        self, private: PrivateTokenProvider | None, private_location: str | None, oauth: OAuthTokenProvider | None
    ) -> None:
        self._private, self._private_location, self._oauth = private, private_location, oauth

    def _for(self, location_id: str) -> PrivateTokenProvider | OAuthTokenProvider:
        if self._private is not None and location_id == self._private_location:
            return self._private
        if self._oauth is not None:
            return self._oauth
        raise GhlNotConnected(location_id)

    async def access_token(self, location_id: str) -> str:
        return await self._for(location_id).access_token(location_id)

    async def refreshed_after_401(self, location_id: str, rejected_token: str) -> str | None:
        return await self._for(location_id).refreshed_after_401(location_id, rejected_token)


class GhlHub:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        db: Database,
        clock: Clock,
        chats: ChatStore,
        tasks: TaskTracker,
    ) -> None:
        self._settings, self._chats = settings, chats
        self.states = OAuthStates(db, clock.time)
        self.box = SecretBox(settings.bot_secret_key.get_secret_value()) if settings.bot_secret_key else None
        self.installations = InstallationStore(db, self.box, clock) if self.box else None
        self.oauth_app: OAuthApp | None = None
        oauth: OAuthTokenProvider | None = None
        if settings.oauth_enabled and self.installations is not None:
            assert settings.ghl_client_id and settings.ghl_client_secret
            self.oauth_app = OAuthApp(
                client_id=settings.ghl_client_id,
                client_secret=settings.ghl_client_secret.get_secret_value(),
                authorize_url=settings.ghl_authorize_url,
                token_url=f"{settings.ghl_api_base}/oauth/token",
                redirect_uri=settings.oauth_redirect_uri,
            )
            oauth = OAuthTokenProvider(self.oauth_app, self.installations, http, clock)
        self.oauth = oauth
        self.private_location = settings.ghl_location_id
        private = (
            PrivateTokenProvider(settings.ghl_private_token.get_secret_value(), settings.ghl_location_id)
            if settings.ghl_private_token and settings.ghl_location_id
            else None
        )
        self.client = GhlClient(
            http,
            api_base=settings.ghl_api_base,
            version=settings.ghl_api_version,
            tokens=RoutingTokens(private, settings.ghl_location_id, oauth),
            clock=clock,
        )
        self.tags = TagService(self.client, TagStore(db, clock.time), tasks, clock, settings.tag_cache_ttl_seconds)

    @property
    def configured(self) -> bool:
        return self.private_location is not None or self.oauth_app is not None

    async def choices(self, chat_id: str) -> list[LocationChoice]:
        out: list[LocationChoice] = []
        if self.private_location:
            out.append(LocationChoice(self.private_location, self.private_location, "private", "active"))
        if self.installations is not None:
            for loc in await self._chats.allowed_locations(chat_id):
                if loc == self.private_location:
                    continue
                inst = await self.installations.get(loc)
                if inst is not None:
                    out.append(LocationChoice(loc, inst.name or loc, "oauth", inst.status))
        return out

    async def location_for(self, chat_id: str, requested: str | None = None) -> str:
        """The location a command in this chat works on: asked for, bound, or the only one."""
        choices = await self.choices(chat_id)
        ids = {c.location_id for c in choices}
        if requested and requested in ids:
            return requested
        bound = await self._chats.bound_location(chat_id)
        if bound in ids and not requested:
            return str(bound)
        if len(choices) == 1 and not requested:
            return choices[0].location_id
        raise NoLocation(choices)

    async def all_locations(self) -> list[str]:
        """Every location the bot can reach (for the scheduler)."""
        out = [self.private_location] if self.private_location else []
        if self.installations is not None:
            out += [i.location_id for i in await self.installations.list_active() if i.location_id not in out]
        return out

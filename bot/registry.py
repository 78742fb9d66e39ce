"""Routers: features declare their commands, card actions, events and error cards here.

    router = Router("tags")

    @router.command("tags", T("List tags", "列出标签"), usage="/tags [search]")
    async def tags(ctx: Context, args: str) -> Card: ...

    @router.action(TagPage)
    async def page(ctx: Context, p: TagPage) -> ActionResult: ...

The server merges every feature's router into one `Registry`; `/help` is generated from it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from cards.i18n import T
from cards.kit import Card
from cards.payloads import Payload

if TYPE_CHECKING:
    from bot.context import Context

P = TypeVar("P", bound=Payload)
E = TypeVar("E", bound=BaseException)


@dataclass
class ActionResult:
    """What a card click answers: a toast and/or a replacement card (both optional)."""

    card: Card | None = None
    toast: dict[str, Any] | None = None

    def to_response(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.toast is not None:
            out["toast"] = self.toast
        if self.card is not None:
            out["card"] = {"type": "raw", "data": self.card}
        return out


CommandHandler = Callable[["Context", str], Awaitable[Card]]
ActionHandler = Callable[["Context", Any], Awaitable[ActionResult]]
EventHandler = Callable[["Context", dict[str, Any]], Awaitable[None]]
MessageListener = Callable[["Context", str], Awaitable[Card | None]]
ErrorHandler = Callable[["Context", Any], Card]
ActionFn = Callable[["Context", P], Awaitable[ActionResult]]


@dataclass(frozen=True)
class CommandSpec:
    name: str
    summary: T
    usage: str
    handler: CommandHandler
    order: int = 100
    hidden: bool = False


@dataclass
class Router:
    name: str
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    actions: dict[str, tuple[type[Payload], ActionHandler]] = field(default_factory=dict)
    events: dict[str, EventHandler] = field(default_factory=dict)
    listeners: list[MessageListener] = field(default_factory=list)
    errors: list[tuple[type[BaseException], ErrorHandler]] = field(default_factory=list)

    def command(self, name: str, summary: T, *, usage: str = "", order: int = 100,
                hidden: bool = False) -> Callable[[CommandHandler], CommandHandler]:
        def deco(fn: CommandHandler) -> CommandHandler:
            self.commands[name] = CommandSpec(name, summary, usage or f"/{name}", fn, order, hidden)
            return fn
        return deco

    def action(self, payload: type[P]) -> Callable[[ActionFn[P]], ActionFn[P]]:
        def deco(fn: ActionFn[P]) -> ActionFn[P]:
            self.actions[payload.kind] = (payload, fn)
            return fn
        return deco

    def event(self, event_type: str) -> Callable[[EventHandler], EventHandler]:
        def deco(fn: EventHandler) -> EventHandler:
            self.events[event_type] = fn
            return fn
        return deco

    def message(self) -> Callable[[MessageListener], MessageListener]:
        """A listener for messages that are not commands (first one to return a card wins)."""
        def deco(fn: MessageListener) -> MessageListener:
            self.listeners.append(fn)
            return fn
        return deco

    def error(self, exc_type: type[E]) -> Callable[[Callable[[Context, E], Card]], Callable[[Context, E], Card]]:
        def deco(fn: Callable[[Context, E], Card]) -> Callable[[Context, E], Card]:
            self.errors.append((exc_type, fn))
            return fn
        return deco


class Registry:
    """All routers merged; a name claimed twice is a start-up error, not a silent override."""

    def __init__(self, routers: list[Router]) -> None:
        self.commands: dict[str, CommandSpec] = {}
        self.actions: dict[str, tuple[type[Payload], ActionHandler]] = {}
        self.events: dict[str, EventHandler] = {}
        self.listeners: list[MessageListener] = []
        self.errors: list[tuple[type[BaseException], ErrorHandler]] = []
        for r in routers:
            clash = (self.commands.keys() & r.commands.keys()) | (self.actions.keys() & r.actions.keys()) \
                | (self.events.keys() & r.events.keys())
            if clash:
                raise ValueError(f"router {r.name!r} registers {sorted(clash)} again")
            self.commands.update(r.commands)
            self.actions.update(r.actions)
            self.events.update(r.events)
            self.listeners.extend(r.listeners)
            self.errors.extend(r.errors)

    def visible_commands(self) -> list[CommandSpec]:
        return sorted((c for c in self.commands.values() if not c.hidden), key=lambda c: (c.order, c.name))

    def error_card(self, ctx: Context, exc: BaseException) -> Card | None:
        for exc_type, fn in self.errors:
            if isinstance(exc, exc_type):
                return fn(ctx, exc)
        return None

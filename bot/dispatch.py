"""The pipeline from a verified Lark delivery to a handler and back out as a card.

Intake `triage`s a message before it answers Lark (no I/O); messages for the bot and events then
run as tracked background tasks (the HTTP 200 has already gone out). Card clicks run inside the
callback's time budget; `intake` decides what to answer.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from bot.context import Context
from bot.ghl.notices import answering_chat
from bot.lark.messages import Command, ParsedText, parse_command, raw_text, strip_mentions
from bot.lark.models import CardAction, MessageReceived
from bot.registry import ActionResult
from bot.services import Services
from cards.help import STALE_CARD, internal_error_card, not_a_command_card, unknown_command_card
from cards.kit import Card, toast
from cards.payloads import RunCommand, StalePayload, parse_value

log = logging.getLogger("bot.dispatch")


def _reference() -> str:
    return secrets.token_hex(4)


def failure_card(ctx: Context, exc: BaseException, *, where: str) -> Card:
    """A registered error card for known failures; otherwise a generic card with a log reference."""
    card = ctx.services.registry.error_card(ctx, exc)
    if card is not None:
        return card
    ref = _reference()
    log.error("handler failed", extra={"where": where, "reference": ref, "chat_id": ctx.chat_id},
              exc_info=exc)
    return internal_error_card(ref)


async def run_command(ctx: Context, name: str, args: str) -> Card:
    """Run one command's handler with metrics and audit; always returns a card to show."""
    svc = ctx.services
    spec = svc.registry.commands.get(name)
    if spec is None:
        await ctx.audit("command", name, "unknown")
        return unknown_command_card(name)
    started = time.perf_counter()
    ctx.command = RunCommand(command=name, args=args[:200])
    answering = answering_chat.set(ctx.chat_id or None)
    try:
        card = await spec.handler(ctx, args)
    except Exception as exc:  # every failure becomes a card; the audit row records which
        svc.metrics.handler_errors.labels("command", name).inc()
        await ctx.audit("command", name, "error", args=args[:200], error=type(exc).__name__)
        return failure_card(ctx, exc, where=f"command {name}")
    finally:
        answering_chat.reset(answering)
        svc.metrics.handler_seconds.labels("command", name).observe(time.perf_counter() - started)
    await ctx.audit("command", name, "ok", args=args[:200])
    return card


@dataclass(frozen=True)
class Incoming:
    """A received message that is for the bot, parsed once."""

    msg: MessageReceived
    text: ParsedText
    command: Command | None


def triage(msg: MessageReceived, bot_open_id: str | None) -> Incoming | None:
    """Is this message for the bot? No I/O, so intake can decide before it answers Lark.

    Not for the bot: its own echoes and other bots, and group chatter that neither @mentions it nor
    starts with `/`."""
    if msg.sender.sender_type != "user":
        return None
    m = msg.message
    parsed = strip_mentions(raw_text(m), m.mentions, bot_open_id)
    command = parse_command(parsed.text)
    if m.chat_type != "p2p" and not parsed.mentioned_bot and command is None:
        return None
    return Incoming(msg, parsed, command)


async def on_message(svc: Services, msg: MessageReceived) -> None:
    """Triage once the bot's own open_id is known (needed to tell its @mentions), then answer."""
    bot_id = await svc.lark.bot_open_id() if msg.message.mentions else None
    incoming = triage(msg, bot_id)
    if incoming is not None:
        await answer_message(svc, incoming)


async def answer_message(svc: Services, incoming: Incoming) -> None:
    m, parsed = incoming.msg.message, incoming.text
    is_group = m.chat_type != "p2p"
    await svc.chats.seen(m.chat_id, m.chat_type)
    ctx = Context(svc, chat_id=m.chat_id, user_id=incoming.msg.sender.sender_id.open_id, chat_type=m.chat_type,
                  message_id=m.message_id, message_type=m.message_type)
    if incoming.command is not None:
        card: Card | None = await run_command(ctx, incoming.command.name, incoming.command.args)
    else:
        card = await _listen(ctx, parsed.text) if parsed.text else None
        if card is None and (not is_group or parsed.mentioned_bot) and len(parsed.text) < 200:
            card = not_a_command_card()
    if card is not None:
        await reply(ctx, card, uuid=f"re-{m.message_id}")


async def _listen(ctx: Context, text: str) -> Card | None:
    for listener in ctx.services.registry.listeners:
        try:
            card = await listener(ctx, text)
        except Exception as exc:
            ctx.services.metrics.handler_errors.labels("listener", listener.__name__).inc()
            await ctx.audit("listener", listener.__name__, "error", error=type(exc).__name__)
            return failure_card(ctx, exc, where=f"listener {listener.__name__}")
        if card is not None:
            return card
    return None


async def reply(ctx: Context, card: Card, *, uuid: str) -> None:
    assert ctx.message_id is not None
    try:
        message_id = await ctx.services.lark.reply_card(ctx.message_id, card, chat_id=ctx.chat_id, uuid=uuid)
    except Exception as exc:
        await ctx.audit("message", "reply", "error", error=str(exc)[:300])
        raise
    await ctx.audit("message", "reply", "ok", message_id=message_id)


async def on_event(svc: Services, event_type: str, event: dict[str, Any]) -> None:
    handler = svc.registry.events.get(event_type)
    if handler is None:
        return
    ctx = Context(svc, chat_id=str(event.get("chat_id", "")), user_id="")
    started = time.perf_counter()
    try:
        await handler(ctx, event)
    except Exception as exc:
        svc.metrics.handler_errors.labels("event", event_type).inc()
        await ctx.audit("event", event_type, "error", error=type(exc).__name__)
        log.error("event handler failed", extra={"event_type": event_type}, exc_info=exc)
    finally:
        svc.metrics.handler_seconds.labels("event", event_type).observe(time.perf_counter() - started)


async def on_card_action(svc: Services, action: CardAction) -> ActionResult:
    """Run a click's handler; stale or unknown payloads answer a friendly toast."""
    ctx = Context(svc, chat_id=action.context.open_chat_id, user_id=action.operator.open_id,
                  action=action.action, open_message_id=action.context.open_message_id)
    try:
        payload = parse_value(action.action.value)
    except StalePayload:
        await ctx.audit("action", str(action.action.value.get("k", "?"))[:40], "stale")
        return ActionResult(toast=toast("warning", STALE_CARD))
    if isinstance(payload, RunCommand):
        return await _run_command_click(ctx, payload)
    entry = svc.registry.actions.get(payload.kind)
    if entry is None:
        return ActionResult(toast=toast("warning", STALE_CARD))
    _, handler = entry
    started = time.perf_counter()
    answering = answering_chat.set(ctx.chat_id or None)
    try:
        result = await handler(ctx, payload)
    except Exception as exc:
        svc.metrics.handler_errors.labels("action", payload.kind).inc()
        await ctx.audit("action", payload.kind, "error", error=type(exc).__name__)
        return ActionResult(card=failure_card(ctx, exc, where=f"action {payload.kind}"))
    finally:
        answering_chat.reset(answering)
        svc.metrics.handler_seconds.labels("action", payload.kind).observe(time.perf_counter() - started)
    await ctx.audit("action", payload.kind, "ok", **payload.model_dump())
    return result


async def _run_command_click(ctx: Context, payload: RunCommand) -> ActionResult:
    """A button standing for a typed command: its card arrives as a new message in the chat."""
    card = await run_command(ctx, payload.command, payload.args)
    key = f"{ctx.open_message_id}|{ctx.user_id}|{payload.command}|{payload.args}"
    await ctx.send(card, uuid="cmd-" + hashlib.sha256(key.encode()).hexdigest()[:40], what=f"/{payload.command}")
    return ActionResult()

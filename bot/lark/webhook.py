"""`POST /lark/events`: the one URL for every Lark event and card callback.

Order (shared/reference/lark.md §2.2): size cap → JSON → signature + timestamp window (when an
encrypt key is set) → decrypt → `url_verification` → verification token → dedupe, recorded
durably (503 if it cannot be) → answer. Messages are triaged first (no I/O): one for the bot
gets a background task, chatter ends there. Events answer 200 at once and run in the background; card
clicks answer with the handler's result if it is ready within the budget, else with a toast,
and the card is updated afterwards with the callback's delayed-update token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from bot.dispatch import answer_message, on_card_action, on_event, on_message, triage
from bot.lark.crypto import DecryptError, lark_decrypt, signature_ok
from bot.lark.models import CardAction, Envelope, MessageReceived
from bot.registry import ActionResult
from bot.services import SERVICES, Services
from cards.help import FAILED, WORKING
from cards.kit import toast

log = logging.getLogger("bot.lark.webhook")

CARD_ACTION = "card.action.trigger"
MESSAGE = "im.message.receive_v1"
ACTION_BUDGET = 2.5  # seconds; Lark gives a callback 3 s
ACTION_BUDGET_KEY = web.AppKey("action_budget", float)
_EMPTY_OBJECT = b"{}"


def _acknowledge() -> web.Response:
    """`{}`: received, nothing to say (most deliveries get it, so its body is built once)."""
    return web.Response(body=_EMPTY_OBJECT, content_type="application/json", charset="utf-8")


def _reject(svc: Services, status: int, reason: str) -> web.Response:
    svc.metrics.events_rejected.labels(reason).inc()
    log.warning("delivery rejected", extra={"reason": reason, "status": status})
    return web.json_response({"error": reason}, status=status)


async def _read_capped(request: web.Request, cap: int) -> bytes | None:
    if request.content_length is not None:
        return None if request.content_length > cap else await request.read()
    body = bytearray()  # chunked: count as it streams in
    async for chunk in request.content.iter_chunked(65536):
        body.extend(chunk)
        if len(body) > cap:
            return None
    return bytes(body)


def _timestamp_fresh(svc: Services, ts: str) -> bool:
    try:
        sent = float(ts)
    except ValueError:
        return False
    return abs(svc.clock.time() - sent) <= svc.settings.lark_timestamp_window


def _token_ok(svc: Services, token: object) -> bool:
    expected = svc.settings.lark_verification_token.get_secret_value()
    return isinstance(token, str) and hmac.compare_digest(token.encode(), expected.encode())


async def lark_events(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    raw = await _read_capped(request, svc.settings.lark_max_body_bytes)
    if raw is None:
        return _reject(svc, 413, "body too large")
    # The signature covers the raw bytes: check it before parsing anything (reference §2.2).
    key = svc.settings.lark_encrypt_key.get_secret_value() if svc.settings.lark_encrypt_key else None
    h = request.headers  # case-insensitive
    ts, nonce, sig = h.get("X-Lark-Request-Timestamp"), h.get("X-Lark-Request-Nonce"), h.get("X-Lark-Signature")
    signed = False
    if key and (ts or nonce or sig):
        if not signature_ok(ts, nonce, sig, key, raw):
            return _reject(svc, 401, "bad signature")
        if not _timestamp_fresh(svc, ts or ""):
            return _reject(svc, 401, "stale or future timestamp")
        signed = True

    try:
        outer = orjson.loads(raw)
    except ValueError:  # orjson.JSONDecodeError: not JSON, not UTF-8, nested too deep
        return _reject(svc, 400, "body is not JSON")
    if not isinstance(outer, dict):
        return _reject(svc, 400, "body is not a JSON object")

    body: Any = outer
    if "encrypt" in outer:
        if not key:
            return _reject(svc, 400, "encrypted delivery but LARK_ENCRYPT_KEY is not set")
        try:
            body = orjson.loads(lark_decrypt(str(outer["encrypt"]), key))
        except (DecryptError, ValueError):
            return _reject(svc, 400, "cannot decrypt")
        if not isinstance(body, dict):
            return _reject(svc, 400, "decrypted body is not a JSON object")

    if body.get("type") == "url_verification":
        if not _token_ok(svc, body.get("token")):
            return _reject(svc, 401, "wrong verification token")
        return web.json_response({"challenge": body.get("challenge", "")})

    if key and not signed:
        return _reject(svc, 401, "missing signature headers")

    if "header" not in body:  # schema 1.0 event (legacy): check its token, then ignore it
        if not _token_ok(svc, body.get("token")):
            return _reject(svc, 401, "wrong verification token")
        svc.metrics.events_received.labels("legacy").inc()
        return _acknowledge()
    try:
        env = Envelope.model_validate(body)
    except ValidationError:
        return _reject(svc, 400, "not a Lark event envelope")
    if not _token_ok(svc, env.header.token):
        return _reject(svc, 401, "wrong verification token")

    etype = env.header.event_type
    if etype not in (MESSAGE, CARD_ACTION) and etype not in svc.registry.events:
        svc.metrics.events_received.labels("ignored").inc()
        return _acknowledge()

    keys = [f"e:{env.header.event_id}"]
    if etype == MESSAGE:
        message = env.event.get("message")
        message_id = message.get("message_id") if isinstance(message, dict) else None
        if isinstance(message_id, str) and message_id:
            keys.append(f"m:{message_id}")
    try:
        first = await svc.dedupe.first_time(keys, svc.clock.time())
    except Exception as exc:  # not recorded, so not acknowledged: Lark delivers it again later
        log.error("cannot record a delivery", extra={"error": type(exc).__name__, "detail": str(exc)[:200]})
        return _reject(svc, 503, "cannot record the delivery now; it will be retried")
    if not first:
        svc.metrics.events_duplicate.labels(etype).inc()
        return _acknowledge()
    svc.metrics.events_received.labels(etype).inc()

    if etype == CARD_ACTION:
        return await _card_action(request, svc, env.event)
    if etype == MESSAGE:
        _message(svc, env)
    else:
        svc.tasks.spawn(on_event(svc, etype, env.event), name=f"{etype} {env.header.event_id}")
    return _acknowledge()


def _message(svc: Services, env: Envelope) -> None:
    """Start the work for a message that is for the bot; chatter that is not ends here, without a task."""
    try:
        msg = MessageReceived.model_validate(env.event)
    except ValidationError:
        log.warning("message event without the fields of a message", extra={"event_id": env.header.event_id})
        return
    name = f"message {env.header.event_id}"
    bot_id = svc.lark.known_bot_open_id
    if msg.message.mentions and bot_id is None:  # telling its @mentions needs the bot's id: read it first
        svc.tasks.spawn(on_message(svc, msg), name=name)
        return
    try:
        incoming = triage(msg, bot_id)
    except Exception as exc:  # a parsing bug must not turn into a 500 for a delivery already recorded
        log.error("message triage failed", extra={"event_id": env.header.event_id}, exc_info=exc)
        return
    if incoming is not None:
        svc.tasks.spawn(answer_message(svc, incoming), name=name)


async def _card_action(request: web.Request, svc: Services, event: dict[str, Any]) -> web.StreamResponse:
    try:
        action = CardAction.model_validate(event)
    except ValidationError:
        return web.json_response({"toast": toast("error", FAILED)})
    work = svc.tasks.spawn(on_card_action(svc, action), name="card action")
    done, _ = await asyncio.wait({work}, timeout=request.app.get(ACTION_BUDGET_KEY, ACTION_BUDGET))
    if work in done and not work.cancelled() and work.exception() is None:
        return web.json_response(work.result().to_response())
    if work in done:
        return web.json_response({"toast": toast("error", FAILED)})
    # Too slow: answer now, and update the card once the answer has left (else the card reverts).
    resp = web.json_response({"toast": toast("info", WORKING)})
    await resp.prepare(request)
    await resp.write_eof()
    svc.tasks.spawn(_finish_late(svc, action, work), name="card action follow-up")
    return resp


async def _finish_late(svc: Services, action: CardAction, work: asyncio.Task[ActionResult]) -> None:
    result = await work
    if result.card is None:
        return
    how = "delayed update" if action.token else "patch"
    outcome = "ok"
    try:
        if action.token:
            await svc.lark.delayed_update(action.token, result.card)
        elif action.context.open_message_id:
            await svc.lark.patch_card(action.context.open_message_id, result.card)
    except Exception:
        outcome = "error"
        raise
    finally:
        await svc.audit.record(kind="message", action=f"card {how}", outcome=outcome,
                               actor=action.operator.open_id or None, chat_id=action.context.open_chat_id or None,
                               detail={"message_id": action.context.open_message_id})

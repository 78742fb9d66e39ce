"""The OAuth connect flow's web side: `/oauth/ghl/start` and `/oauth/ghl/callback`.

`/connect` in a chat creates a one-time state (bound to that chat and user, 10 minutes) and
links to `/oauth/ghl/start?state=…`, which pins the state in a signed HttpOnly cookie and
redirects to GHL's chooselocation page. GHL's docs do not promise to echo `state`, so the
callback accepts it from the query or, failing that, from the cookie; either way it must carry
our signature and be unused and unexpired. Only then is the code exchanged and stored.
"""

from __future__ import annotations

import html
import logging
import secrets

from aiohttp import web

from bot.ghl.errors import GhlError
from bot.ghl.hub import GhlHub
from bot.services import SERVICES, Services
from cards.connect import connected_card

log = logging.getLogger("bot.ghl.oauth")

STATE_TTL = 600.0
COOKIE = "ghl_oauth_state"


async def new_state(hub: GhlHub, chat_id: str, user_open_id: str) -> str:
    assert hub.box is not None
    nonce = secrets.token_urlsafe(18)
    await hub.states.create(nonce, chat_id, user_open_id, STATE_TTL)
    return f"{nonce}.{hub.box.sign(nonce)}"


def _signed_nonce(hub: GhlHub, state: str | None) -> str | None:
    if not state or hub.box is None or state.count(".") != 1:
        return None
    nonce, sig = state.split(".")
    return nonce if hub.box.verify(nonce, sig) else None


def _page(title: str, text: str, status: int = 200) -> web.Response:
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:36em;margin:4em auto'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
    return web.Response(
        text=body,
        status=status,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _hub(request: web.Request) -> tuple[Services, GhlHub] | None:
    svc = request.app[SERVICES]
    if svc.ghl is None or svc.ghl.oauth is None:
        return None
    return svc, svc.ghl


async def oauth_start(request: web.Request) -> web.StreamResponse:
    got = _hub(request)
    if got is None:
        return _page("Not available", "This bot has no GHL Marketplace app configured.", 404)
    _, hub = got
    state = request.query.get("state")
    if _signed_nonce(hub, state) is None:
        return _page("Invalid link", "This connect link is not valid. Run /connect in Lark for a new one.", 400)
    assert hub.oauth_app is not None and state is not None
    resp = web.Response(status=302, headers={"Location": hub.oauth_app.authorize_url_for(state),
                                             "Cache-Control": "no-store"})
    resp.set_cookie(
        COOKIE, state, max_age=int(STATE_TTL), httponly=True, secure=request.secure, samesite="Lax", path="/oauth/ghl"
    )
    return resp


async def oauth_callback(request: web.Request) -> web.StreamResponse:
    got = _hub(request)
    if got is None:
        return _page("Not available", "This bot has no GHL Marketplace app configured.", 404)
    svc, hub = got
    q_state, c_state = request.query.get("state"), request.cookies.get(COOKIE)
    if q_state and c_state and q_state != c_state:
        return await _refuse(svc, "state mismatch between link and browser")
    nonce = _signed_nonce(hub, q_state or c_state)
    if nonce is None:
        return await _refuse(svc, "missing or forged state")
    if request.query.get("error"):
        await hub.states.consume(nonce)
        return _page(
            "Not connected", "The authorisation was cancelled or refused in GHL. Run /connect to try again.", 400
        )
    code = request.query.get("code")
    if not code:
        return await _refuse(svc, "no authorization code")
    pending = await hub.states.consume(nonce)
    if pending is None:
        return await _refuse(svc, "state expired or already used")
    assert hub.oauth is not None
    try:
        inst = await hub.oauth.exchange_code(code)
    except GhlError as exc:
        await svc.audit.record(
            kind="connect",
            action="oauth callback",
            outcome="error",
            actor=pending.user_open_id,
            chat_id=pending.chat_id,
            detail={"status": exc.status, "trace_id": exc.trace_id},
        )
        return _page("Not connected", f"GHL did not accept the authorisation ({exc.message}). Run /connect again.", 502)
    await svc.chats.allow_location(pending.chat_id, inst.location_id, pending.user_open_id)
    if await svc.chats.bound_location(pending.chat_id) is None:
        await svc.chats.bind_location(pending.chat_id, inst.location_id)
    await svc.audit.record(
        kind="connect",
        action="oauth callback",
        outcome="ok",
        actor=pending.user_open_id,
        chat_id=pending.chat_id,
        location_id=inst.location_id,
        detail={"scope": inst.scope},
    )
    card = connected_card(inst.location_id, inst.name, pending.user_open_id)
    svc.tasks.spawn(_announce(svc, pending.chat_id, card, nonce), name="announce connection")
    resp = _page(
        "Connected",
        f"GoHighLevel location {inst.location_id} is connected. You can close this window and go back to Lark.",
    )
    resp.del_cookie(COOKIE, path="/oauth/ghl")
    return resp


async def _announce(svc: Services, chat_id: str, card: dict[str, object], nonce: str) -> None:
    try:
        await svc.lark.send_card(chat_id, card, uuid=f"connected-{nonce}")
        await svc.audit.record(kind="message", action="send connected", outcome="ok", chat_id=chat_id)
    except Exception as exc:
        await svc.audit.record(
            kind="message", action="send connected", outcome="error", chat_id=chat_id, detail={"error": str(exc)[:200]}
        )
        raise


async def _refuse(svc: Services, why: str) -> web.Response:
    await svc.audit.record(kind="connect", action="oauth callback", outcome="refused", detail={"why": why})
    log.warning("oauth callback refused", extra={"why": why})
    return _page(
        "Link not valid",
        "This connect link is invalid, expired or already used. Run /connect in Lark for a new one.",
        400,
    )

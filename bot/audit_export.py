"""`GET /audit.csv`: the audit log as CSV for admins, behind AUDIT_EXPORT_TOKEN.

The token comes as `Authorization: Bearer <token>` or `?token=<token>` and is compared in
constant time. No token configured → 404 (the endpoint does not exist); a missing or wrong
token → 401. Optional filters: `?location=<id>`, `?kind=<kind>` (e.g. `tagging`).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.services import SERVICES

MAX_FILTER_CHARS = 100


def _presented(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token") or None


def _filter(request: web.Request, name: str) -> str | None:
    value = (request.query.get(name) or "").strip()
    if len(value) > MAX_FILTER_CHARS:
        raise web.HTTPBadRequest(text=f"{name} is too long")
    return value or None


async def audit_csv(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    expected = svc.settings.audit_export_token
    if expected is None or not expected.get_secret_value():
        raise web.HTTPNotFound()
    presented = _presented(request)
    if presented is None or not hmac.compare_digest(presented.encode("utf-8"),
                                                    expected.get_secret_value().encode("utf-8")):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="audit"'})
    location_id, kind = _filter(request, "location"), _filter(request, "kind")
    body = await svc.audit.export_csv(location_id=location_id, kind=kind)
    return web.Response(text=body, content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"',
                                 "Cache-Control": "no-store"})

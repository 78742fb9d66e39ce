"""`/digest on HH:MM [IANA zone] | off | now | status`: the chat's daily digest.

Changing the schedule (`on`, `off`) is for the group's owner and admins (Lark chat info) and the
bot's digest admins (`DIGEST_ADMINS`); in a one-to-one chat the user may always. `status` and
`now` are for anyone. Sending is the scheduler's job (`bot.digest`); `now` replies with a digest
at once without touching the day's scheduled one.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.context import Context
from bot.digest import DigestService, digest_service, load_zone, local_date_of, parse_hhmm
from bot.permissions import may_configure
from bot.registry import Router
from bot.store.digests import DigestSchedule
from cards.digest import (
    USAGE,
    ScheduleView,
    digest_input_error_card,
    digest_refused_card,
    digest_schedule_card,
)
from cards.i18n import T
from cards.kit import Card

router = Router("digest")


def _quote(text: str) -> str:
    return text.replace("`", "'").replace("<", "&lt;").replace(">", "&gt;")[:40]


@router.command("digest", T("Daily digest: on HH:MM [IANA zone], off, now, status",
                            "每日摘要：on HH:MM [IANA 时区]、off、now、status"), usage=USAGE, order=40)
async def digest(ctx: Context, args: str) -> Card:
    parts = args.split()
    sub = parts[0].lower() if parts else "status"
    rest = parts[1:]
    if parse_hhmm(sub):  # "/digest 09:00 Europe/Berlin" means "on"
        sub, rest = "on", parts
    if sub == "status":
        return await _status(ctx)
    if sub == "now":
        return await _now(ctx)
    if sub in ("on", "off"):
        allowed, why = await may_configure(ctx)
        if not allowed:
            await ctx.audit("digest", sub, "refused", args=args[:100])
            return digest_refused_card(why)
        return await (_on(ctx, rest) if sub == "on" else _off(ctx))
    await ctx.audit("digest", "bad input", "rejected", args=args[:100])
    return digest_input_error_card(T(f"I don't know `/digest {_quote(sub)}`.", f"我不认识 `/digest {_quote(sub)}`。"))


async def view(ctx: Context, service: DigestService, sched: DigestSchedule | None, changed: T | None = None
               ) -> ScheduleView:
    tz = await service.zone_for(sched)
    last = await service.sends.last(ctx.chat_id)
    next_text = None
    if sched is not None and sched.enabled:
        nxt = await service.next_send_at(sched, tz, ctx.services.clock.time())
        if nxt is not None:
            next_text = nxt.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    return ScheduleView(enabled=bool(sched and sched.enabled), hhmm=sched.hhmm if sched else None, tz=tz.key,
                        next_send=next_text, last=f"{last.local_date}: {last.status}" if last else None,
                        changed=changed)


async def _status(ctx: Context) -> Card:
    service = digest_service(ctx.services)
    sched = await service.schedules.get(ctx.chat_id)
    await ctx.audit("digest", "status")
    return digest_schedule_card(await view(ctx, service, sched))


async def _now(ctx: Context) -> Card:
    service = digest_service(ctx.services)
    tz = await service.zone_for(await service.schedules.get(ctx.chat_id))
    now = ctx.services.clock.time()
    card, location_id = await service.build(ctx.chat_id, local_date_of(now, tz), tz, now)
    await ctx.audit("digest", "now", location_id=location_id,
                    local_date=datetime.fromtimestamp(now, UTC).astimezone(tz).date().isoformat())
    return card


async def _on(ctx: Context, rest: list[str]) -> Card:
    if not rest:
        return await _bad(ctx, "on", T("Tell me when: a time of day is missing.", "请告诉我时间：缺少具体时刻。"))
    if len(rest) > 2:
        return await _bad(ctx, "on", T("Too many words: give a time and, optionally, one time zone.",
                                        "参数过多：请给出时间，以及可选的一个时区。"))
    hhmm = parse_hhmm(rest[0])
    if hhmm is None:
        q = _quote(rest[0])
        return await _bad(ctx, "on", T(f"`{q}` is not a time of day: use HH:MM on a 24-hour clock (00:00–23:59).",
                                       f"`{q}` 不是有效的时间：请使用 24 小时制的 HH:MM（00:00–23:59）。"))
    zone_name = rest[1] if len(rest) == 2 else ctx.services.settings.default_timezone
    tz = await load_zone(zone_name)
    if tz is None:
        q = _quote(zone_name)
        return await _bad(ctx, "on", T(f"`{q}` is not an IANA time zone name.", f"`{q}` 不是 IANA 时区名称。"))
    service = digest_service(ctx.services)
    sched = await service.schedules.set(ctx.chat_id, hhmm, tz.key, ctx.user_id or None)
    await ctx.audit("digest", "on", hhmm=hhmm, tz=tz.key)
    return digest_schedule_card(await view(ctx, service, sched, T("Saved.", "已保存。")))


async def _off(ctx: Context) -> Card:
    service = digest_service(ctx.services)
    was_on = await service.schedules.disable(ctx.chat_id, ctx.user_id or None)
    await ctx.audit("digest", "off", "ok" if was_on else "unchanged")
    sched = await service.schedules.get(ctx.chat_id)
    changed = T("Turned off.", "已关闭。") if was_on else T("It was already off.", "它本来就是关闭的。")
    return digest_schedule_card(await view(ctx, service, sched, changed))


async def _bad(ctx: Context, action: str, problem: T) -> Card:
    await ctx.audit("digest", action, "rejected", problem=problem.en)
    return digest_input_error_card(problem)

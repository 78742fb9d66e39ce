"""The audit card: the latest things the bot did in this chat, newest first, paged backwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from cards.i18n import T
from cards.kit import Card, button, card, code, markdown, row
from cards.payloads import Payload, register


@register
class AuditPage(Payload):
    kind: ClassVar[str] = "audit.page"
    before: int | None = None
    f: str | None = None  # kind filter
    loc: str | None = None


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: float
    actor: str | None
    location_id: str | None
    kind: str
    action: str
    outcome: str


_OUTCOME = {"ok": "✅", "error": "❌", "unknown": "❓", "stale": "⌛", "refused": "🚫", "duplicate": "♻️"}


def _line(e: AuditLine) -> T:
    when = datetime.fromtimestamp(e.at, UTC).strftime("%m-%d %H:%M UTC")
    who = f"<at id={e.actor}></at>" if e.actor and e.actor.startswith("ou_") else (e.actor or "bot")
    loc = f" · {code(e.location_id[:64])}" if e.location_id else ""
    mark = _OUTCOME.get(e.outcome, "•")
    # kind and outcome are the bot's own words; the action can quote what a user typed
    return T.same(f"{mark} `{when}` **{e.kind[:40]}** {code(e.action[:80])} — {who}{loc} ({e.outcome[:20]})")


def audit_card(entries: list[AuditLine], *, page: AuditPage, has_more: bool) -> Card:
    filters = ", ".join(x for x in (page.f and f"kind={page.f}", page.loc and f"location={page.loc}") if x)
    subtitle = (T(f"Filtered: {filters}", f"筛选：{filters}") if filters
                else T("This chat, newest first", "本群，最新在前"))
    if not entries:
        body = [markdown(T("Nothing recorded yet.", "暂无记录。"))]
    else:
        body = [markdown(T("\n".join(_line(e).en for e in entries), "\n".join(_line(e).zh for e in entries)))]
    body.append(markdown(T("Filter with `/audit kind:<command|message|action|tagging|digest> location:<id>`.",
                           "筛选：`/audit kind:<command|message|action|tagging|digest> location:<id>`。")))
    buttons = []
    if page.before is not None:
        buttons.append(button(T("Newest", "最新"), AuditPage(f=page.f, loc=page.loc)))
    if has_more and entries:
        buttons.append(button(T("Older", "更早"), AuditPage(before=entries[-1].id, f=page.f, loc=page.loc),
                              type="primary"))
    if buttons:
        body.append(row(*buttons))
    return card(T("Audit log", "审计日志"), body, template="grey", subtitle=subtitle)

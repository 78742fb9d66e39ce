"""Location cards: which GHL sub-accounts this chat can use, and the one it works on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cards.i18n import T
from cards.kit import Card, button, card, clip, code, columns, esc, markdown, row
from cards.payloads import Payload, RunCommand, register


@register
class LocationPick(Payload):
    kind: ClassVar[str] = "loc.pick"
    loc: str


@dataclass(frozen=True)
class LocationItem:
    id: str
    name: str
    via: str
    status: str
    bound: bool


MAX_SHOWN = 25  # 5 components each: well under Lark's 200 per card


def location_card(items: list[LocationItem], *, can_connect: bool, note: T | None = None) -> Card:
    body = []
    if note is not None:
        body.append(markdown(note))
    if not items:
        body.append(markdown(T("No GHL location is connected to this chat yet.", "本群还没有连接任何 GHL 位置。")))
    shown = sorted(items, key=lambda it: not it.bound)[:MAX_SHOWN]  # the one in use always shows
    for it in shown:
        state = (T("✅ in use", "✅ 使用中") if it.bound else T("", "")) + (
            T(" · ⚠️ needs reconnect", " · ⚠️ 需要重新连接") if it.status != "active" else T("", ""))
        via = T("Private Integration", "私有集成") if it.via == "private" else T("OAuth app", "OAuth 应用")
        name = f"**{esc(clip(it.name, 100))}**  {code(it.id)}\n"
        label = T.same(name) + via + state
        cell = [] if it.bound else [button(T("Use this", "使用此位置"), LocationPick(loc=it.id), type="primary")]
        body.append(columns([markdown(label)], cell, weights=[3, 1]))
    if len(items) > len(shown):
        more = len(items) - len(shown)
        body.append(markdown(T(f"…and {more} more: choose one with `/location <id>`.",
                               f"……还有 {more} 个：用 `/location <id>` 选择。")))
    if can_connect:
        body.append(row(button(T("Connect another location", "连接其他位置"), RunCommand(command="connect"))))
    return card(T("GHL locations", "GHL 位置"), body, template="indigo",
                subtitle=T("Commands in this chat work on the location in use", "本群的命令作用于正在使用的位置"))


def choose_location_card(items: list[LocationItem], *, can_connect: bool) -> Card:
    note = (T("Several locations are connected here: pick the one this chat works on.",
              "本群连接了多个位置：请选择本群要使用的位置。") if items else None)
    return location_card(items, can_connect=can_connect, note=note)

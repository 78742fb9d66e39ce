"""Card JSON 2.0 primitives: plain data in, Lark card dicts out. No I/O, no bot imports."""

from __future__ import annotations

import json
from typing import Any, Literal

from cards.i18n import LOCALES, T
from cards.payloads import Payload

Card = dict[str, Any]
Element = dict[str, Any]
Template = Literal["blue", "wathet", "turquoise", "green", "yellow", "orange", "red", "carmine",
                   "violet", "purple", "indigo", "grey", "default"]
ButtonType = Literal["default", "primary", "danger", "text", "primary_text", "danger_text",
                     "primary_filled", "danger_filled", "laser"]

MAX_CARD_BYTES = 30 * 1024
MAX_ELEMENTS = 200


def card(title: T, elements: list[Element], *, template: Template = "blue", subtitle: T | None = None,
         summary: T | None = None) -> Card:
    header: dict[str, Any] = {"title": {"tag": "plain_text", **title.content()}, "template": template}
    if subtitle is not None:
        header["subtitle"] = {"tag": "plain_text", **subtitle.content()}
    return {
        "schema": "2.0",
        "config": {"update_multi": True, "width_mode": "fill", "locales": list(LOCALES),
                   "summary": (summary or title).content()},
        "header": header,
        "body": {"direction": "vertical", "elements": elements},
    }


def esc(text: str) -> str:
    """Neutralise Lark markdown in user or GHL text (names, summaries, error messages, arguments)."""
    return (text.replace("\\", "\\\\").replace("*", "\\*").replace("_", "\\_").replace("~", "\\~")
            .replace("`", "'").replace("[", "\\[").replace("]", "\\]").replace("<", "&lt;").replace(">", "&gt;"))


def code(text: str) -> str:
    """An inline code span (nothing inside is markdown; a backtick cannot close it)."""
    return "`" + text.replace("`", "'").replace("\n", " ") + "`"


def clip(text: str, limit: int = 300) -> str:
    """One line of at most `limit` characters, with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(1, limit - 1)].rstrip() + "…"


def markdown(text: T, *, element_id: str | None = None) -> Element:
    el: Element = {"tag": "markdown", **text.content()}
    if element_id:
        el["element_id"] = element_id
    return el


def hr() -> Element:
    return {"tag": "hr"}


def button(text: T, payload: Payload | None = None, *, type: ButtonType = "default", url: str | None = None,
           disabled: bool = False, confirm: tuple[T, T] | None = None, name: str | None = None,
           submit: bool = False) -> Element:
    behaviors: list[dict[str, Any]] = []
    if payload is not None:
        behaviors.append({"type": "callback", "value": payload.to_value()})
    if url is not None:
        behaviors.append({"type": "open_url", "default_url": url})
    el: Element = {"tag": "button", "type": type, "text": {"tag": "plain_text", **text.content()},
                   "behaviors": behaviors}
    if disabled:
        el["disabled"] = True
    if confirm is not None:
        el["confirm"] = {"title": {"tag": "plain_text", **confirm[0].content()},
                         "text": {"tag": "plain_text", **confirm[1].content()}}
    if name is not None:
        el["name"] = name
    if submit:
        el["form_action_type"] = "submit"
    return el


def row(*elements: Element, flex: Literal["none", "stretch", "flow", "bisect", "trisect"] = "flow") -> Element:
    """Buttons or blocks side by side (a `column_set` with one auto-width column each)."""
    return {"tag": "column_set", "flex_mode": flex, "horizontal_spacing": "8px",
            "columns": [{"tag": "column", "width": "auto", "elements": [e]} for e in elements]}


def columns(*cells: list[Element], weights: list[int] | None = None) -> Element:
    ws = weights or [1] * len(cells)
    return {"tag": "column_set", "flex_mode": "none", "horizontal_spacing": "8px",
            "columns": [{"tag": "column", "width": "weighted", "weight": w, "elements": c}
                        for w, c in zip(ws, cells, strict=True)]}


def option(text: T, value: str) -> dict[str, Any]:
    return {"text": {"tag": "plain_text", **text.content()}, "value": value}


def select(name: str, options: list[dict[str, Any]], *, placeholder: T, multi: bool = False,
           initial: list[str] | None = None, payload: Payload | None = None, required: bool = False) -> Element:
    el: Element = {"tag": "multi_select_static" if multi else "select_static", "name": name,
                   "placeholder": {"tag": "plain_text", **placeholder.content()}, "options": options}
    if initial:
        if multi:
            el["selected_values"] = initial
        else:
            el["initial_option"] = initial[0]
    if required:
        el["required"] = True
    if payload is not None:
        el["behaviors"] = [{"type": "callback", "value": payload.to_value()}]
    return el


def text_input(name: str, *, placeholder: T, label: T | None = None, required: bool = False,
               max_length: int | None = None, default: str | None = None) -> Element:
    el: Element = {"tag": "input", "name": name, "placeholder": {"tag": "plain_text", **placeholder.content()}}
    if label is not None:
        el["label"] = {"tag": "plain_text", **label.content()}
    if required:
        el["required"] = True
    if max_length is not None:
        el["max_length"] = max_length
    if default is not None:
        el["default_value"] = default
    return el


def form(name: str, elements: list[Element]) -> Element:
    return {"tag": "form", "name": name, "elements": elements}


def chart(spec: dict[str, Any], *, aspect_ratio: Literal["1:1", "2:1", "4:3", "16:9"] = "16:9") -> Element:
    return {"tag": "chart", "aspect_ratio": aspect_ratio, "color_theme": "brand", "preview": True,
            "height": "auto", "chart_spec": spec}


def size_bytes(c: Card) -> int:
    return len(json.dumps(c, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def count_elements(c: Card) -> int:
    """Every dict with a `tag` counts as a component towards Lark's 200-per-card limit."""
    def walk(node: Any) -> int:
        if isinstance(node, dict):
            return (1 if "tag" in node else 0) + sum(walk(v) for v in node.values())
        if isinstance(node, list):
            return sum(walk(v) for v in node)
        return 0
    return walk(c.get("body", {}))


def toast(kind: Literal["info", "success", "warning", "error"], text: T) -> dict[str, Any]:
    return {"type": kind, "content": text.en, "i18n": text.toast_i18n()}

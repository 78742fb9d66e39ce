"""A strict Card JSON 2.0 validator for tests (shared/reference/lark.md §5).

Card JSON 2.0 rejects unknown properties, so every object the bot builds is checked against a
whitelist of properties per tag. `assert_valid_card(card)` raises AssertionError listing every
problem; `card_problems(card)` returns them. Use it on every card a fake received.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["assert_fake_cards_valid", "assert_valid_card", "card_problems", "elements", "iter_elements", "texts"]

MAX_BYTES = 30 * 1024
MAX_COMPONENTS = 200
MAX_CHARTS = 5
MAX_BUTTON_TEXT = 100
LOCALES = ("en_us", "zh_cn")
ELEMENT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,19}$")

_COMMON = {"tag", "element_id", "margin"}
_BEHAVIOR_TYPES = {"callback": {"type", "value"},
                   "open_url": {"type", "default_url", "pc_url", "ios_url", "android_url"}}
BUTTON_TYPES = {"default", "primary", "danger", "text", "primary_text", "danger_text", "primary_filled",
                "danger_filled", "laser"}
TEMPLATES = {"blue", "wathet", "turquoise", "green", "yellow", "orange", "red", "carmine", "violet", "purple",
             "indigo", "grey", "default"}

ROOT_KEYS = {"schema", "config", "header", "body", "card_link"}
CONFIG_KEYS = {"update_multi", "width_mode", "locales", "summary", "enable_forward", "enable_forward_interaction",
               "style", "streaming_mode"}
HEADER_KEYS = {"title", "subtitle", "template", "icon", "padding", "text_tag_list"}
BODY_KEYS = {"direction", "padding", "elements", "horizontal_spacing", "vertical_spacing", "horizontal_align",
             "vertical_align"}
TEXT_KEYS = {"tag", "content", "i18n_content", "text_size", "text_color", "text_align", "lines"}
SUMMARY_KEYS = {"content", "i18n_content"}
OPTION_KEYS = {"text", "value", "icon"}
CONFIRM_KEYS = {"title", "text"}

# Properties allowed per element tag, besides tag / element_id / margin.
ELEMENT_KEYS: dict[str, set[str]] = {
    "markdown": {"content", "i18n_content", "text_align", "text_size", "icon"},
    "hr": set(),
    "div": {"text", "fields", "icon", "width"},
    "column_set": {"flex_mode", "horizontal_spacing", "horizontal_align", "background_style", "columns"},
    "column": {"width", "weight", "elements", "vertical_align", "vertical_spacing", "horizontal_align",
               "horizontal_spacing", "padding", "direction", "background_style", "behaviors"},
    "button": {"type", "size", "width", "icon", "text", "behaviors", "disabled", "disabled_tips", "hover_tips",
               "confirm", "name", "form_action_type"},
    "select_static": {"type", "name", "placeholder", "options", "initial_option", "required", "disabled",
                      "behaviors", "width", "confirm"},
    "multi_select_static": {"type", "name", "placeholder", "options", "selected_values", "required", "disabled",
                            "behaviors", "width", "confirm"},
    "input": {"name", "placeholder", "label", "label_position", "required", "max_length", "default_value",
              "i18n_default_value", "disabled", "width", "input_type", "rows", "auto_resize", "max_rows",
              "behaviors", "confirm"},
    "form": {"name", "elements", "direction", "padding", "horizontal_spacing", "vertical_spacing"},
    "chart": {"aspect_ratio", "color_theme", "preview", "height", "chart_spec"},
    "img": {"img_key", "i18n_img_key", "alt", "title", "scale_type", "size", "transparent", "preview",
            "corner_radius"},
    "table": {"page_size", "row_height", "header_style", "columns", "rows", "freeze_first_column"},
    "collapsible_panel": {"expanded", "header", "border", "background_color", "elements", "direction", "padding",
                          "vertical_spacing"},
    "interactive_container": {"width", "height", "background_style", "has_border", "border_color",
                              "corner_radius", "padding", "behaviors", "disabled", "disabled_tips", "hover_tips",
                              "confirm", "elements", "direction", "horizontal_spacing", "vertical_spacing",
                              "horizontal_align", "vertical_align"},
}
INTERACTIVE = {"button", "select_static", "multi_select_static", "input"}
# Text-object fields (plain_text / lark_md) per element tag.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    "button": ("text", "hover_tips", "disabled_tips"),
    "select_static": ("placeholder",),
    "multi_select_static": ("placeholder",),
    "input": ("placeholder", "label"),
    "div": ("text",),
    "img": ("alt", "title"),
}
NESTED_ELEMENTS = {"column", "form", "collapsible_panel", "interactive_container"}


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.element_ids: set[str] = set()
        self.charts = 0

    def fail(self, where: str, msg: str) -> None:
        self.problems.append(f"{where}: {msg}")

    def keys(self, obj: dict[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(obj) - allowed)
        if unknown:
            self.fail(where, f"unknown properties {unknown}")

    def i18n(self, obj: dict[str, Any], where: str, *, shown: bool = True) -> None:
        content = obj.get("content")
        if not isinstance(content, str):
            self.fail(where, "content must be a string")
            return
        if not shown:
            return
        i18n = obj.get("i18n_content")
        if not isinstance(i18n, dict):
            self.fail(where, f"content {content[:40]!r} has no i18n_content")
            return
        for loc in LOCALES:
            if not isinstance(i18n.get(loc), str) or not i18n[loc].strip():
                self.fail(where, f"i18n_content lacks {loc}")
        unknown = sorted(set(i18n) - set(LOCALES) - {"ja_jp", "zh_hk", "zh_tw"})
        if unknown:
            self.fail(where, f"i18n_content has unknown locales {unknown}")

    def text(self, obj: Any, where: str) -> None:
        if not isinstance(obj, dict):
            self.fail(where, "text object must be an object")
            return
        if obj.get("tag") not in ("plain_text", "lark_md"):
            self.fail(where, f"text tag must be plain_text or lark_md, not {obj.get('tag')!r}")
        self.keys(obj, TEXT_KEYS, where)
        self.i18n(obj, where)

    def behaviors(self, value: Any, where: str) -> None:
        if not isinstance(value, list) or not value:
            self.fail(where, "behaviors must be a non-empty list")
            return
        for i, b in enumerate(value):
            w = f"{where}[{i}]"
            if not isinstance(b, dict) or b.get("type") not in _BEHAVIOR_TYPES:
                self.fail(w, f"unknown behavior {b!r}")
                continue
            self.keys(b, _BEHAVIOR_TYPES[b["type"]], w)
            if b["type"] == "callback":
                v = b.get("value")
                if not isinstance(v, dict):
                    self.fail(w, "callback value must be an object")
                elif not isinstance(v.get("k"), str) or not isinstance(v.get("v"), int):
                    self.fail(w, "callback value must carry a kind 'k' and a version 'v'")
            elif not isinstance(b.get("default_url"), str) or not b["default_url"].startswith(("https://",
                                                                                              "http://")):
                self.fail(w, "open_url needs an http(s) default_url")

    def confirm(self, value: Any, where: str) -> None:
        if not isinstance(value, dict):
            self.fail(where, "confirm must be an object")
            return
        self.keys(value, CONFIRM_KEYS, where)
        for k in CONFIRM_KEYS:
            self.text(value.get(k), f"{where}.{k}")

    def elements(self, value: Any, where: str, *, in_form: bool, at_root: bool) -> None:
        if not isinstance(value, list):
            self.fail(where, "elements must be a list")
            return
        for i, el in enumerate(value):
            self.element(el, f"{where}[{i}]", in_form=in_form, at_root=at_root)

    def element(self, el: Any, where: str, *, in_form: bool, at_root: bool) -> None:
        if not isinstance(el, dict):
            self.fail(where, "element must be an object")
            return
        tag = el.get("tag")
        where = f"{where}<{tag}>"
        if tag == "action":
            self.fail(where, "the 1.0 {'tag': 'action'} wrapper is gone in 2.0 (error 200861)")
            return
        if tag not in ELEMENT_KEYS:
            self.fail(where, f"unknown element tag {tag!r}")
            return
        self.keys(el, _COMMON | ELEMENT_KEYS[tag], where)
        if "element_id" in el:
            eid = el["element_id"]
            if not isinstance(eid, str) or not ELEMENT_ID.match(eid):
                self.fail(where, f"bad element_id {eid!r}")
            elif eid in self.element_ids:
                self.fail(where, f"duplicate element_id {eid!r}")
            else:
                self.element_ids.add(eid)
        for field in TEXT_FIELDS.get(tag, ()):
            if field in el:
                self.text(el[field], f"{where}.{field}")
        if "behaviors" in el:
            self.behaviors(el["behaviors"], f"{where}.behaviors")
        if "confirm" in el:
            self.confirm(el["confirm"], f"{where}.confirm")
        getattr(self, f"el_{tag}", lambda *_: None)(el, where, in_form, at_root)

    # -- per tag ---------------------------------------------------------------------------

    def el_markdown(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        self.i18n(el, where)

    def el_button(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        if el.get("type", "default") not in BUTTON_TYPES:
            self.fail(where, f"unknown button type {el.get('type')!r}")
        text = el.get("text")
        if not isinstance(text, dict):
            self.fail(where, "button needs a text")
        elif len(str(text.get("content", ""))) > MAX_BUTTON_TEXT:
            self.fail(where, f"button text longer than {MAX_BUTTON_TEXT} characters")
        if not el.get("behaviors") and el.get("form_action_type") not in ("submit", "reset"):
            self.fail(where, "button does nothing (no behaviors, not a form button)")
        if "form_action_type" in el:
            if not in_form:
                self.fail(where, "form_action_type outside a form")
            if el["form_action_type"] not in ("submit", "reset"):
                self.fail(where, f"bad form_action_type {el['form_action_type']!r}")

    def _options(self, el: dict[str, Any], where: str) -> set[str]:
        opts = el.get("options")
        values: set[str] = set()
        if not isinstance(opts, list) or not opts:
            self.fail(where, "options must be a non-empty list")
            return values
        for i, o in enumerate(opts):
            w = f"{where}.options[{i}]"
            if not isinstance(o, dict):
                self.fail(w, "option must be an object")
                continue
            self.keys(o, OPTION_KEYS, w)
            self.text(o.get("text"), f"{w}.text")
            if not isinstance(o.get("value"), str):
                self.fail(w, "option value must be a string")
            elif o["value"] in values:
                self.fail(w, f"duplicate option value {o['value']!r}")
            else:
                values.add(o["value"])
        return values

    def el_select_static(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        values = self._options(el, where)
        if "initial_option" in el and el["initial_option"] not in values:
            self.fail(where, "initial_option is not one of the options")

    def el_multi_select_static(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        values = self._options(el, where)
        sel = el.get("selected_values", [])
        if not isinstance(sel, list) or not set(sel) <= values:
            self.fail(where, "selected_values must be option values")

    def el_column_set(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        cols = el.get("columns")
        if not isinstance(cols, list) or not cols:
            self.fail(where, "column_set needs columns")
            return
        for i, col in enumerate(cols):
            w = f"{where}.columns[{i}]"
            if not isinstance(col, dict) or col.get("tag") != "column":
                self.fail(w, "a column_set holds only column elements")
                continue
            self.element(col, w, in_form=in_form, at_root=False)

    def el_column(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        self.elements(el.get("elements", []), f"{where}.elements", in_form=in_form, at_root=False)

    def el_form(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        if not at_root or in_form:
            self.fail(where, "forms sit at the body root only")
        if not isinstance(el.get("name"), str) or not el["name"]:
            self.fail(where, "form needs a name")
        self.elements(el.get("elements", []), f"{where}.elements", in_form=True, at_root=False)
        names: list[str] = []
        submit = False
        for child in iter_elements(el.get("elements", [])):
            if child.get("tag") in INTERACTIVE:
                name = child.get("name")
                if not isinstance(name, str) or not name:
                    self.fail(where, f"interactive {child.get('tag')} in a form needs a name")
                else:
                    names.append(name)
            if child.get("tag") == "button" and child.get("form_action_type") == "submit":
                submit = True
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            self.fail(where, f"duplicate names in form {dupes}")
        if not submit:
            self.fail(where, "form has no submit button")

    def el_collapsible_panel(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        header = el.get("header")
        if isinstance(header, dict):
            self.keys(header, {"title", "background_color", "vertical_align", "padding", "icon", "icon_position",
                               "icon_expanded_angle", "width"}, f"{where}.header")
            self.text(header.get("title"), f"{where}.header.title")
        self.elements(el.get("elements", []), f"{where}.elements", in_form=in_form, at_root=False)

    def el_interactive_container(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        self.elements(el.get("elements", []), f"{where}.elements", in_form=in_form, at_root=False)

    def el_chart(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        self.charts += 1
        if el.get("aspect_ratio", "16:9") not in ("1:1", "2:1", "4:3", "16:9"):
            self.fail(where, f"bad aspect_ratio {el.get('aspect_ratio')!r}")
        if el.get("color_theme", "brand") not in ("brand", "rainbow", "complementary", "converse", "primary"):
            self.fail(where, f"bad color_theme {el.get('color_theme')!r}")
        if not isinstance(el.get("chart_spec"), dict):
            self.fail(where, "chart_spec must be an object")

    def el_div(self, el: dict[str, Any], where: str, in_form: bool, at_root: bool) -> None:
        for i, f in enumerate(el.get("fields", []) or []):
            w = f"{where}.fields[{i}]"
            if not isinstance(f, dict):
                self.fail(w, "field must be an object")
                continue
            self.keys(f, {"is_short", "text"}, w)
            self.text(f.get("text"), f"{w}.text")


def iter_elements(elements: Any) -> Iterator[dict[str, Any]]:
    """Every element dict under `elements`, depth first (columns, forms, panels, containers)."""
    if not isinstance(elements, list):
        return
    for el in elements:
        if not isinstance(el, dict):
            continue
        yield el
        if el.get("tag") == "column_set":
            yield from iter_elements(el.get("columns"))
        if el.get("tag") in NESTED_ELEMENTS:
            yield from iter_elements(el.get("elements"))


def elements(card: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """Every element of the card's body with this `tag`, depth first."""
    return [el for el in iter_elements(card.get("body", {}).get("elements")) if el.get("tag") == tag]


def _count_tagged(node: Any) -> int:
    if isinstance(node, dict):
        return (1 if "tag" in node else 0) + sum(_count_tagged(v) for v in node.values())
    if isinstance(node, list):
        return sum(_count_tagged(v) for v in node)
    return 0


def texts(card: dict[str, Any]) -> str:
    """All user-visible strings of a card, English and Chinese, joined (for content assertions)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("content",) and isinstance(v, str):
                    out.append(v)
                elif k == "i18n_content" and isinstance(v, dict):
                    out.extend(str(x) for x in v.values())
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(card)
    return "\n".join(out)


def card_problems(card: Any) -> list[str]:
    c = _Checker()
    if not isinstance(card, dict):
        return ["card must be a JSON object"]
    c.keys(card, ROOT_KEYS, "card")
    if card.get("schema") != "2.0":
        c.fail("card", 'schema must be "2.0"')
    config = card.get("config")
    if not isinstance(config, dict):
        c.fail("config", "missing")
    else:
        c.keys(config, CONFIG_KEYS, "config")
        if config.get("update_multi") is not True:
            c.fail("config", "update_multi must be true")
        locales = config.get("locales")
        if locales is not None and (not isinstance(locales, list) or not set(LOCALES) <= set(locales)):
            c.fail("config", f"locales must include {list(LOCALES)}")
        if "summary" in config:
            if isinstance(config["summary"], dict):
                c.keys(config["summary"], SUMMARY_KEYS, "config.summary")
                c.i18n(config["summary"], "config.summary")
            else:
                c.fail("config.summary", "must be an object")
    header = card.get("header")
    if not isinstance(header, dict):
        c.fail("header", "missing")
    else:
        c.keys(header, HEADER_KEYS, "header")
        title = header.get("title")
        c.text(title, "header.title")
        if isinstance(title, dict) and not str(title.get("content", "")).strip():
            c.fail("header.title", "empty title")
        if "subtitle" in header:
            c.text(header["subtitle"], "header.subtitle")
        if header.get("template", "default") not in TEMPLATES:
            c.fail("header", f"unknown template {header.get('template')!r}")
    body = card.get("body")
    if not isinstance(body, dict):
        c.fail("body", "missing")
    else:
        c.keys(body, BODY_KEYS, "body")
        if not body.get("elements"):
            c.fail("body", "no elements")
        c.elements(body.get("elements"), "body.elements", in_form=False, at_root=True)
    components = _count_tagged(card.get("body"))  # conservative: text objects count too
    if components > MAX_COMPONENTS:
        c.fail("card", f"{components} components (max {MAX_COMPONENTS})")
    if c.charts > MAX_CHARTS:
        c.fail("card", f"{c.charts} charts (max {MAX_CHARTS})")
    # What the client sends: json.dumps(card, ensure_ascii=False) as the message `content`.
    size = len(json.dumps(card, ensure_ascii=False).encode("utf-8"))
    if size > MAX_BYTES:
        c.fail("card", f"{size} bytes serialized (max {MAX_BYTES})")
    return c.problems


def assert_valid_card(card: Any) -> None:
    problems = card_problems(card)
    assert not problems, "invalid Card JSON 2.0:\n  " + "\n  ".join(problems)


def assert_fake_cards_valid(fake: Any) -> int:
    """Validate every card a FakeLark received (sends, replies, PATCHes, delayed updates); return the count."""
    seen = 0
    for m in fake.sent_messages():
        if m["msg_type"] == "interactive":
            assert_valid_card(m["content"])
            seen += 1
    for p in fake.patches():
        assert_valid_card(p["content"])
        seen += 1
    for d in fake.delayed_updates():
        assert_valid_card(d["card"])
        seen += 1
    return seen

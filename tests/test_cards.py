"""Every card builder in cards/ produces a valid Card JSON 2.0 card (tests/cardcheck.py)."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest

import cards
from cards.audit import AuditLine, AuditPage, audit_card
from cards.autotag import (
    AnnouncedPost,
    Choice,
    CreatedView,
    ReasonView,
    RuleView,
    StatusView,
    SuggestionView,
    TagView,
    announce_card,
    created_card,
    rules_card,
    rules_missing_card,
    status_card,
    suggestion_card,
    tag_picker_card,
)
from cards.connect import (
    connect_card,
    connect_link_sent_card,
    connect_unavailable_card,
    connected_card,
    reconnect_card,
)
from cards.digest import (
    DayChange,
    DigestData,
    Mover,
    ScheduleView,
    TagCount,
    WeekChange,
    digest_card,
    digest_empty_card,
    digest_input_error_card,
    digest_no_location_card,
    digest_refused_card,
    digest_schedule_card,
)
from cards.ghl_errors import ghl_error_card
from cards.help import (
    CommandLine,
    error_card,
    help_card,
    internal_error_card,
    needs_a_chat_card,
    not_a_command_card,
    not_allowed_card,
    unknown_command_card,
)
from cards.i18n import T
from cards.kit import Card, button, card, form, markdown, select, text_input
from cards.location import LocationItem, choose_location_card, location_card
from cards.payloads import RunCommand, parse_value
from cards.stats import Metric, PlatformLine, StatsData, no_stats_card, stats_card
from cards.tags import PostRow, TagPage, TagRow, tag_detail_card, tag_list_card
from tests.cardcheck import assert_valid_card, card_problems, iter_elements, texts

ALL_COMMANDS = [
    CommandLine("help", "/help", T("Show this list of commands", "显示命令列表")),
    CommandLine("tags", "/tags [search]", T("List tags", "列出标签")),
    CommandLine("stats", "/stats [days]", T("Post statistics", "帖子统计")),
    CommandLine("digest", "/digest [on|off|HH:MM]", T("Daily digest", "每日摘要")),
    CommandLine("connect", "/connect", T("Connect GoHighLevel", "连接 GoHighLevel")),
    CommandLine("audit", "/audit [kind:…] [location:…]", T("Audit log", "审计日志")),
]


def _entries(n: int, *, long: bool) -> list[AuditLine]:
    return [AuditLine(id=10_000 - i, at=1_767_225_600.0 - 60 * i,
                      actor=f"ou_{'a' * 32}{i}" if i % 3 else None,
                      location_id=("loc_" + "x" * 60) if long else None,
                      kind="command" if i % 2 else "autotag-writeback-very-long-kind-name",
                      action=("x" * 120 if long else "help"),
                      outcome=("ok", "error", "unknown", "stale", "refused", "weird")[i % 6])
            for i in range(n)]


# Every public `*_card` builder in cards/, with the inputs each is tested with (edge cases included).
BUILDERS: dict[str, list[Callable[[], Card]]] = {
    "cards.help.help_card": [
        lambda: help_card([]),
        lambda: help_card(ALL_COMMANDS[:1]),
        lambda: help_card(ALL_COMMANDS),
        lambda: help_card(ALL_COMMANDS, welcome=True),
    ],
    "cards.help.unknown_command_card": [
        lambda: unknown_command_card("nope"),
        lambda: unknown_command_card("x" * 300),
        lambda: unknown_command_card("标签"),
    ],
    "cards.help.not_a_command_card": [not_a_command_card],
    "cards.help.needs_a_chat_card": [lambda: needs_a_chat_card("/audit")],
    "cards.help.not_allowed_card": [
        lambda: not_allowed_card(T("change this", "修改此项")),
        lambda: not_allowed_card(T("change this", "修改此项"), T("Lark did not answer.", "Lark 没有响应。")),
    ],
    "cards.help.error_card": [
        lambda: error_card(T("Oops", "哎呀"), T("What", "什么"), T("Do this", "这样做")),
        lambda: error_card(T("Oops", "哎呀"), T("What", "什么"), T("Do this", "这样做"), reference="abc123",
                           retry=RunCommand(command="stats", args="7"),
                           url=(T("Open GHL", "打开 GHL"), "https://app.gohighlevel.com/")),
    ],
    "cards.help.internal_error_card": [lambda: internal_error_card("deadbeef")],
    "cards.audit.audit_card": [
        lambda: audit_card([], page=AuditPage(), has_more=False),
        lambda: audit_card([], page=AuditPage(before=5, f="command", loc="loc_1"), has_more=True),
        lambda: audit_card(_entries(15, long=False), page=AuditPage(), has_more=True),
        lambda: audit_card(_entries(15, long=True), page=AuditPage(before=99_999, f="command" * 5, loc="l" * 64),
                           has_more=True),
    ],
}

# -- feature cards (GHL): typical inputs plus many / long / hostile ones --------------------------------------

LONG = "Ünïcödé *bold* _x_ `code` <at id=all></at> [link](https://e.com) 中文" * 8
LOC = "loc_" + "L" * 20


def _tag_rows(n: int) -> list[TagRow]:
    return [TagRow(f"tag{i:04d}", (LONG if i % 2 else f"tag {i}")[:200], "2026-01-0" + str(1 + i % 9)
                   if i % 3 else None) for i in range(n)]


def _posts(n: int) -> list[PostRow]:
    return [PostRow(LONG[:300], ("published", "scheduled", "failed")[i % 3], "2026-01-02T10:00:00Z" if i % 2 else None,
                    ("facebook", "instagram", None)[i % 3]) for i in range(n)]


def _stats(n_platforms: int, n_days: int, **extra: Any) -> StatsData:
    metrics = [Metric(k, v, c) for k, v, c in (("posts", 12, 50.0), ("impressions", 1_234_567, -3.5),
                                                ("reach", 98_765, None), ("likes", 0, 0.0),
                                                ("comments", 5, 100.0), ("followers", 10_000, 1.0))]
    platforms = [PlatformLine(p, 3, 1000 * i, 500, 20, 2, (-1.0) ** i * 7)
                 for i, p in enumerate(["facebook", "instagram", "linkedin", "google", "pinterest", "youtube",
                                        "tiktok", "threads", "bluesky"][:n_platforms])]
    daily = [(f"01-{d + 1:02d}", float(d * 100)) for d in range(n_days)]
    return StatsData(LOC, "2025-12-25 – 2025-12-31", metrics, platforms, daily, **extra)


def _digest(n: int) -> DigestData:
    return DigestData(
        location=LOC, local_date="2026-01-02", tz="Asia/Shanghai", yesterday="2026-01-01", day_before="2025-12-31",
        week_window="2025-12-26 – 2026-01-01",
        days=[DayChange(k, 10.0 * i, 5.0 * i) for i, k in enumerate(["posts", "impressions", "likes", "comments"])],
        week=[WeekChange(k, 100.0, c, o) for k, c, o in (("posts", 5.0, 90.0), ("impressions", None, None),
                                                         ("likes", -20.0, 130.0), ("comments", 0.0, 0.0))],
        own_reference="2025-12-26" if n else None,
        movers=[Mover(p, 12.5 * (i - 2), 100.0 * i if i % 2 else None, 10.0 * i if i % 3 else None)
                for i, p in enumerate(["facebook", "instagram", "linkedin", "tiktok", "youtube", "google"][:n])],
        tags=None if n == 0 else [TagCount(LONG[:60] + str(i), i) for i in range(n * 5)],
        trend=[(f"12-{d + 1:02d}", float(d)) for d in range(min(30, n * 5))], taken_at="2026-01-02 08:00 UTC")


def _tagviews(n: int) -> list[TagView]:
    return [TagView(f"t{i}", LONG[:40] + str(i), (ReasonView("name", "vip"), ReasonView("hashtag", "#vip"),
                                                  ReasonView("rule", "sale", keyword="sale"))[: 1 + i % 3])
            for i in range(n)]


def _choices(n: int, prefix: str = "c") -> list[Choice]:
    return [Choice(f"{prefix}{i}", (LONG if i % 2 else f"choice {i}")[:120]) for i in range(n)]


def _suggestion(n: int, *, user_ready: bool = True) -> SuggestionView:
    tags, accounts = _choices(n, "t"), _choices(max(1, n // 3), "a")
    return SuggestionView(LOC, "om_msg", LONG, _tagviews(n), [f"#missing{i}" for i in range(n)], tags,
                          [c.value for c in tags[:3]], accounts, [a.value for a in accounts[:1]], "Asia/Shanghai",
                          "2026-01-02 09:00", user_ready, note=T("Note", "备注") if n else None)


def _announced(n: int) -> list[AnnouncedPost]:
    return [AnnouncedPost(f"p{i}", LONG, ("facebook", None)[i % 2], "2026-01-02 10:00 UTC" if i % 2 else None,
                          [f"tag{j}" for j in range(i % 7)], _tagviews(i % 3), [f"#m{i}"] if i % 2 else [])
            for i in range(n)]


BUILDERS.update({
    "cards.connect.connect_card": [
        lambda p=p: connect_card("https://marketplace.gohighlevel.com/oauth?state=x" + "y" * 300, minutes=10, private=p)
        for p in (True, False)],
    "cards.connect.connect_link_sent_card": [lambda: connect_link_sent_card("ou_user", minutes=10)],
    "cards.connect.connect_unavailable_card": [lambda: connect_unavailable_card(private_location=None),
                                               lambda: connect_unavailable_card(private_location=LOC)],
    "cards.connect.connected_card": [lambda: connected_card(LOC, None, "ou_user"),
                                     lambda: connected_card(LOC, LONG, "ou_user")],
    "cards.connect.reconnect_card": [lambda: reconnect_card(LOC, T("token revoked", "令牌已撤销"))],
    "cards.ghl_errors.ghl_error_card": [
        lambda kind=kind, loc=loc, msg=msg, trace=trace: ghl_error_card(kind, loc, msg, trace_id=trace,
                                                                       retry=RunCommand(command="stats"))
        for kind, loc, msg, trace in (("auth", LOC, "", None), ("rate_limited", None, LONG, "trace-1"),
                                      ("unavailable", LOC, "503", "t"), ("forbidden", LOC, "scope", None),
                                      ("needs_reconnect", LOC, "", None), ("bad_request", LOC, "x", "t"),
                                      ("not_connected", LOC, "", None), ("something_new", None, "?", None))],
    "cards.location.location_card": [
        lambda: location_card([], can_connect=True),
        lambda: location_card([LocationItem(f"loc{i}", LONG[:80], ("private", "oauth")[i % 2],
                                            ("active", "needs_reconnect")[i % 2], i == 0) for i in range(25)],
                              can_connect=False, note=T("Note", "备注"))],
    "cards.location.choose_location_card": [
        lambda: choose_location_card([], can_connect=False),
        lambda: choose_location_card([LocationItem("a", "A", "oauth", "active", False),
                                      LocationItem("b", "B", "private", "active", False)], can_connect=True)],
    "cards.stats.stats_card": [lambda: stats_card(_stats(0, 0)), lambda: stats_card(_stats(3, 7)),
                               lambda: stats_card(_stats(9, 90, platform_filter="facebook",
                                                         other_locations=[f"loc{i}" for i in range(30)],
                                                         expired=[LONG[:50]] * 10))],
    "cards.stats.no_stats_card": [lambda: no_stats_card(LOC, unsupported=[], expired=[]),
                                  lambda: no_stats_card(LOC, unsupported=[LONG[:40]] * 20, expired=[LONG[:40]] * 20,
                                                        platform_filter="tiktok")],
    "cards.tags.tag_list_card": [lambda: tag_list_card(LOC, [], total=0, page=TagPage(loc=LOC)),
                                 lambda: tag_list_card(LOC, _tag_rows(10), total=5000,
                                                       page=TagPage(loc=LOC, q=LONG[:50], off=20))],
    "cards.tags.tag_detail_card": [lambda: tag_detail_card(LOC, _tag_rows(1)[0], [], days=30, back=TagPage(loc=LOC)),
                                   lambda: tag_detail_card(LOC, _tag_rows(2)[1], _posts(50), days=90,
                                                           back=TagPage(loc=LOC, q="x", off=10))],
    "cards.digest.digest_card": [lambda: digest_card(_digest(0)), lambda: digest_card(_digest(6))],
    "cards.digest.digest_empty_card": [lambda b=b: digest_empty_card(LOC, "2026-01-02", "UTC", "08:00", no_accounts=b)
                                       for b in (True, False)],
    "cards.digest.digest_no_location_card": [lambda: digest_no_location_card(0), lambda: digest_no_location_card(5)],
    "cards.digest.digest_schedule_card": [
        lambda: digest_schedule_card(ScheduleView(False, None, "UTC", None)),
        lambda: digest_schedule_card(ScheduleView(True, "09:00", "Asia/Shanghai", "2026-01-03 09:02",
                                                  last="2026-01-02: sent", changed=T("Turned on", "已开启")))],
    "cards.digest.digest_input_error_card": [lambda: digest_input_error_card(T("Bad time", "时间无效"))],
    "cards.digest.digest_refused_card": [lambda: digest_refused_card(), lambda: digest_refused_card(T("no", "不"))],
    "cards.autotag.status_card": [
        lambda: status_card(StatusView(LOC, True, True, 12, "ou_user", "chat"), note=T("Saved", "已保存")),
        lambda: status_card(StatusView(LOC, False, False, 0, None, "none"))],
    "cards.autotag.rules_card": [
        lambda: rules_card(LOC, [], [], note=None),
        lambda: rules_card(LOC, [RuleView(LONG[:50] + str(i), LONG[:50], missing=i % 4 == 0) for i in range(200)],
                           _choices(300), note=T("Note", "备注"))],
    "cards.autotag.tag_picker_card": [
        lambda: tag_picker_card(LOC, "sale", "Sales", _choices(3), close=True),
        lambda: tag_picker_card(LOC, LONG, LONG, _choices(500), close=False)],
    "cards.autotag.rules_missing_card": [
        lambda: rules_missing_card(LOC, [RuleView("kw", "gone", missing=True)]),
        lambda: rules_missing_card(LOC, [RuleView(LONG[:60] + str(i), LONG[:60], True) for i in range(300)])],
    "cards.autotag.suggestion_card": [lambda: suggestion_card(_suggestion(0, user_ready=False)),
                                      lambda: suggestion_card(_suggestion(3)),
                                      lambda: suggestion_card(_suggestion(400))],
    "cards.autotag.created_card": [
        lambda o=o, m=m: created_card(CreatedView(LOC, "p1", o, m, LONG, ["a", "b"] * 30, ["acc"] * 20,
                                                  when="2026-01-02 09:00" if m == "schedule" else None))
        for o in ("created", "already", "recovered") for m in ("draft", "schedule")],
    "cards.autotag.announce_card": [lambda: announce_card(LOC, _announced(1)),
                                    lambda: announce_card(LOC, _announced(80))],
})


CASES = [pytest.param(name, i, id=f"{name.rsplit('.', 1)[1]}-{i}")
         for name, makers in BUILDERS.items() for i in range(len(makers))]


def public_card_builders() -> set[str]:
    found: set[str] = set()
    for info in pkgutil.iter_modules(cards.__path__, prefix="cards."):
        mod = importlib.import_module(info.name)
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if name.endswith("_card") and not name.startswith("_") and fn.__module__ == mod.__name__:
                found.add(f"{mod.__name__}.{name}")
    return found


def test_every_card_builder_is_covered() -> None:
    found = public_card_builders()
    assert "cards.help.help_card" in found  # the walk itself works
    missing = sorted(found - BUILDERS.keys())
    assert not missing, f"card builders without a validation case in tests/test_cards.py BUILDERS: {missing}"
    gone = sorted(BUILDERS.keys() - found)
    assert not gone, f"BUILDERS names builders that no longer exist: {gone}"


@pytest.mark.parametrize(("name", "index"), CASES)
def test_card_builder_is_valid(name: str, index: int) -> None:
    built = BUILDERS[name][index]()
    assert_valid_card(built)
    # Every callback value round-trips through the payload parser (never stale when fresh).
    for el in iter_elements(built["body"]["elements"]):
        for b in el.get("behaviors", []):
            if b["type"] == "callback":
                assert parse_value(b["value"]).to_value() == b["value"]


def test_help_card_lists_commands_and_quick_buttons() -> None:
    c = help_card(ALL_COMMANDS)
    body = texts(c)
    for cmd in ALL_COMMANDS:
        assert cmd.usage in body
        assert cmd.summary.zh in body
    values = [b["value"] for el in iter_elements(c["body"]["elements"]) for b in el.get("behaviors", [])]
    assert {"k": "cmd", "v": 1, "command": "tags", "args": ""} in values
    assert all(isinstance(v, dict) for v in values)


def test_unknown_command_card_points_to_help() -> None:
    c = unknown_command_card("nope")
    assert c["header"]["title"]["content"] == "Unknown command"
    assert "/help" in texts(c) and "/nope" in texts(c)
    values = [b["value"] for el in iter_elements(c["body"]["elements"]) for b in el.get("behaviors", [])]
    assert values == [{"k": "cmd", "v": 1, "command": "help", "args": ""}]


def test_internal_error_card_shows_the_reference_only() -> None:
    c = internal_error_card("ref42")
    body = texts(c)
    assert "ref42" in body
    assert "Traceback" not in body and "Error:" not in body


def test_audit_card_with_many_long_entries_stays_under_limits() -> None:
    c = audit_card(_entries(15, long=True), page=AuditPage(before=1), has_more=True)
    assert_valid_card(c)
    assert len(json.dumps(c, ensure_ascii=False).encode()) < 30 * 1024
    older = [b["value"] for el in iter_elements(c["body"]["elements"]) for b in el.get("behaviors", [])
             if b["value"].get("before") is not None]
    assert older == [{"k": "audit.page", "v": 1, "before": 10_000 - 14}]


# -- the validator itself catches the mistakes it exists for -----------------------------------------------


def _good() -> Card:
    return help_card(ALL_COMMANDS)


def _mutate(fn: Callable[[Card], Any]) -> Card:
    c = copy.deepcopy(_good())
    fn(c)
    return c


def _first(c: Card, tag: str) -> dict[str, Any]:
    return next(el for el in iter_elements(c["body"]["elements"]) if el.get("tag") == tag)


def _with_form(*children: dict[str, Any]) -> Card:
    return card(T("Form", "表单"), [form("f", list(children))])


_NAME = T("Name", "名字")
_SAVE = T("Save", "保存")
_KIND = T("Kind", "种类")


BROKEN: dict[str, tuple[Callable[[], Card], str]] = {
    "schema 1.0": (lambda: _mutate(lambda c: c.update(schema="1.0")), "schema"),
    "no update_multi": (lambda: _mutate(lambda c: c["config"].pop("update_multi")), "update_multi"),
    "unknown root key": (lambda: _mutate(lambda c: c.update(i18n_elements={})), "unknown properties"),
    "header i18n (1.0)": (lambda: _mutate(lambda c: c["header"].update(i18n={})), "unknown properties"),
    "no title": (lambda: _mutate(lambda c: c["header"].pop("title")), "header.title"),
    "unknown markdown key": (lambda: _mutate(lambda c: _first(c, "markdown").update(text="x")), "unknown properties"),
    "unknown button key": (lambda: _mutate(lambda c: _first(c, "button").update(value={"k": "cmd"})),
                           "unknown properties"),
    "unknown text key": (lambda: _mutate(lambda c: _first(c, "button")["text"].update(color="red")),
                         "unknown properties"),
    "action wrapper": (lambda: _mutate(lambda c: c["body"]["elements"].append(
        {"tag": "action", "actions": [_first(c, "button")]})), "wrapper"),
    "string callback": (lambda: _mutate(lambda c: _first(c, "button")["behaviors"][0].update(value="cmd")),
                        "must be an object"),
    "missing zh": (lambda: _mutate(lambda c: _first(c, "markdown")["i18n_content"].pop("zh_cn")), "zh_cn"),
    "no i18n": (lambda: _mutate(lambda c: _first(c, "markdown").pop("i18n_content")), "i18n_content"),
    "bad element_id": (lambda: _mutate(lambda c: _first(c, "markdown").update(element_id="1abc")), "element_id"),
    "long element_id": (lambda: _mutate(lambda c: _first(c, "markdown").update(element_id="a" * 21)), "element_id"),
    "duplicate element_id": (lambda: _mutate(lambda c: [el.update(element_id="same") for el in
                                                        c["body"]["elements"][:2]]), "duplicate element_id"),
    "too many components": (lambda: card(T("Big", "大"), [markdown(T.same(str(i))) for i in range(201)]),
                            "components"),
    "too large": (lambda: card(T("Big", "大"), [markdown(T.same("x" * 31_000))]), "bytes"),
    "form without submit": (lambda: _with_form(text_input("a", placeholder=_NAME)), "submit"),
    "form duplicate names": (lambda: _with_form(text_input("a", placeholder=_NAME),
                                                text_input("a", placeholder=_NAME),
                                                button(_SAVE, RunCommand(command="x"), name="s", submit=True)),
                             "duplicate names"),
    "form unnamed input": (lambda: _with_form(select("", [], placeholder=_KIND),
                                              button(_SAVE, RunCommand(command="x"), name="s", submit=True)),
                           "needs a name"),
    "nested form": (lambda: card(T("F", "F"), [{"tag": "column_set", "columns": [{"tag": "column", "elements": [
        form("f", [button(_SAVE, RunCommand(command="x"), name="s", submit=True)])]}]}]), "body root"),
    "bad button type": (lambda: _mutate(lambda c: _first(c, "button").update(type="big")), "button type"),
    "unknown tag": (lambda: _mutate(lambda c: c["body"]["elements"].append({"tag": "note"})), "unknown element"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validator_rejects(case: str) -> None:
    make, expected = BROKEN[case]
    problems = card_problems(make())
    assert problems, f"{case}: the validator accepted a broken card"
    assert any(expected in p for p in problems), problems
    with pytest.raises(AssertionError):
        assert_valid_card(make())


def test_validator_accepts_a_full_form_card() -> None:
    c = card(T("Rule", "规则"), [
        markdown(T("Add a rule", "添加规则"), element_id="intro"),
        form("rule_form", [
            text_input("keyword", placeholder=T("Keyword", "关键词"), label=T("Keyword", "关键词"), required=True,
                       max_length=50),
            select("tag_id", [{"text": {"tag": "plain_text", **T.same("vip").content()}, "value": "t1"}],
                   placeholder=_KIND, initial=["t1"]),
            select("more", [{"text": {"tag": "plain_text", **T.same("a").content()}, "value": "a"}],
                   placeholder=_KIND, multi=True, initial=["a"]),
            button(_SAVE, RunCommand(command="autotag", args="add"), name="save", submit=True, type="primary"),
        ]),
        button(T("Docs", "文档"), url="https://example.com/docs",
               confirm=(T("Sure?", "确定？"), T("Leaves Lark", "将离开飞书"))),
    ], subtitle=T("Auto-tagging", "自动打标签"))
    assert card_problems(c) == []


HOSTILE = "x` <at id=all></at> [Reconnect](https://evil.example/login) **bold** <font color='red'>!</font>"


def test_user_and_ghl_text_cannot_inject_markdown() -> None:
    from cards.connect import connected_card
    from cards.ghl_errors import ghl_error_card
    from cards.location import LocationItem, location_card
    from cards.stats import no_stats_card
    from cards.tags import TagPage, TagRow, tag_list_card

    cards = [
        location_card([LocationItem("loc1", HOSTILE, "oauth", "active", False)], can_connect=False),
        connected_card("loc1", HOSTILE, "ou_user"),
        no_stats_card("loc1", unsupported=[HOSTILE], expired=[HOSTILE]),
        ghl_error_card("bad_request", "loc1", HOSTILE, trace_id=None),
        tag_list_card("loc1", [TagRow("t1", HOSTILE, None)], total=1, page=TagPage(loc="loc1")),
    ]
    for c in cards:
        assert_valid_card(c)
        shown = texts(c)
        assert "<at id=all>" not in shown and "<font" not in shown
        assert "[Reconnect](" not in shown and "**bold**" not in shown


def test_names_are_clipped_so_long_tags_cannot_overflow_a_card() -> None:
    from cards.tags import TagPage, TagRow, tag_list_card

    rows = [TagRow(f"t{i}", "标" * 400, None) for i in range(10)]
    assert_valid_card(tag_list_card("loc1", rows, total=10, page=TagPage(loc="loc1")))


def test_a_chat_with_many_locations_still_gets_a_valid_card() -> None:
    from cards.location import LocationItem, location_card

    items = [LocationItem(f"loc{i:03d}", f"Location {i}", "oauth", "active", i == 77) for i in range(120)]
    c = location_card(items, can_connect=True)
    assert_valid_card(c)
    assert "loc077" in texts(c) and "95 more" in texts(c)

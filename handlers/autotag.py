"""`/autotag`: per-chat auto-tagging switches, per-location keyword rules, and Lark → GHL posting.

With auto-tagging on, a rich-text post or a long message (not a command) in the chat gets a
card suggesting existing tags (with reasons), the accounts to publish to, and "Create draft" /
"Schedule" buttons. Rules and suggestions only ever use tags that exist: GHL's API cannot
create tags, and every card that meets a missing tag says so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from bot.autotag.posting import (
    CreateOutcome,
    PostRequest,
    ScheduleError,
    create_once,
    parse_schedule,
    posting_user,
)
from bot.autotag.suggest import LocationTagging, location_tagging
from bot.context import Context
from bot.ghl.errors import GhlError
from bot.ghl.models import Account
from bot.permissions import may_configure
from bot.registry import ActionResult, Router
from bot.store.autotag import AutotagStore, ChatAutotag, PostingStore
from bot.tagging import Suggestions, TagInfo, close_matches, key, resolve_tag
from cards.autotag import (
    KEYWORD_MAX,
    MAX_TAG_OPTIONS,
    AutotagPost,
    AutotagRuleAdd,
    AutotagRulePick,
    AutotagRuleRemove,
    AutotagSet,
    Choice,
    CreatedView,
    ReasonView,
    RuleView,
    StatusView,
    SuggestionView,
    TagView,
    created_card,
    rules_card,
    status_card,
    suggestion_card,
    tag_picker_card,
)
from cards.ghl_errors import ghl_error_card
from cards.help import not_allowed_card
from cards.i18n import T
from cards.kit import Card, clip, code, esc, toast

router = Router("autotag")

LONG_TEXT_CHARS = 80  # a plain message this long is treated as a post to publish
MULTILINE_MIN_CHARS = 20  # a multi-line message (what a rich-text post becomes) may be shorter
AUDIT = "tagging"
_ARROWS = ("->", "→", "=>", "⇒", "－＞")
_QUOTES = "\"'“”‘’「」『』`"
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def _stores(ctx: Context) -> tuple[AutotagStore, PostingStore]:
    svc = ctx.services
    return AutotagStore(svc.db, svc.clock.time), PostingStore(svc.db, svc.clock.time)


def _clean(text: str) -> str:
    return " ".join(text.strip().strip(_QUOTES).split())


def parse_rule(args: str) -> tuple[str, str | None]:
    """`sale -> Promo` → ("sale", "Promo"); `sale` → ("sale", None)."""
    for arrow in _ARROWS:
        if arrow in args:
            kw, _, tag = args.partition(arrow)
            return _clean(kw), _clean(tag) or None
    return _clean(args), None


def _on_off(word: str) -> bool | None:
    w = word.strip().lower()
    if w in ("on", "yes", "true", "1", "开", "开启", "打开"):
        return True
    if w in ("off", "no", "false", "0", "关", "关闭"):
        return False
    return None


# ----- status --------------------------------------------------------------------------------


async def _status(ctx: Context, loc: str, note: T | None = None) -> Card:
    store, _ = _stores(ctx)
    chat = await store.get(ctx.chat_id)
    user = await posting_user(ctx.services, chat, loc)
    source: Literal["chat", "installation", "none"] = (
        "chat" if chat.ghl_user_id else ("installation" if user else "none"))
    view = StatusView(loc, chat.enabled, chat.writeback, len(await store.rules(loc)), user, source)
    return status_card(view, note)


async def _set(ctx: Context, loc: str, *, enabled: bool | None = None, writeback: bool | None = None) -> ChatAutotag:
    store, _ = _stores(ctx)
    # Announcements go to the chats bound to a location: make the binding explicit.
    if enabled and await ctx.services.chats.bound_location(ctx.chat_id) != loc:
        await ctx.services.chats.bind_location(ctx.chat_id, loc)
    chat = await store.update(ctx.chat_id, enabled=enabled, writeback=writeback)
    await ctx.audit(AUDIT, "settings", location_id=loc, enabled=chat.enabled, writeback=chat.writeback)
    return chat


# ----- rules ---------------------------------------------------------------------------------


async def _tagging(ctx: Context, loc: str) -> LocationTagging:
    store, _ = _stores(ctx)
    return await location_tagging(ctx.ghl, loc, await store.rules(loc))


def _tag_choices(tags: list[TagInfo]) -> list[Choice]:
    return [Choice(t.id, t.name) for t in sorted(tags, key=lambda t: (key(t.name), t.id))]


async def _rules(ctx: Context, loc: str, note: T | None = None) -> Card:
    tagging = await _tagging(ctx, loc)
    ids = tagging.tag_ids
    views = [RuleView(r.keyword, r.tag_name, r.tag_id not in ids) for r in tagging.rules]
    return rules_card(loc, views, _tag_choices(tagging.tags), note)


async def _save_rule(ctx: Context, loc: str, keyword: str, tag: TagInfo) -> None:
    store, _ = _stores(ctx)
    for r in await store.rules(loc):  # one rule per keyword, whatever its case or width
        if r.keyword != keyword and key(r.keyword) == key(keyword):
            await store.remove_rule(loc, r.keyword)
    await store.add_rule(loc, keyword, tag.id, tag.name, ctx.user_id or None)
    await ctx.audit(AUDIT, "rule.add", location_id=loc, keyword=keyword, tag_id=tag.id, tag=tag.name)


def _keyword_problem(keyword: str) -> T | None:
    if not keyword or not key(keyword):
        return T("Give a keyword: `/autotag add <keyword> -> <tag>`.",
                 "请提供关键词：`/autotag add <关键词> -> <标签>`。")
    if len(keyword) > KEYWORD_MAX:
        return T(f"Keep keywords under {KEYWORD_MAX} characters.", f"关键词请少于 {KEYWORD_MAX} 个字符。")
    return None


async def _add_rule(ctx: Context, loc: str, args: str) -> Card:
    keyword, wanted = parse_rule(args)
    problem = _keyword_problem(keyword)
    if problem is not None:
        return await _rules(ctx, loc, problem)
    tagging = await _tagging(ctx, loc)
    if wanted:
        by_id = [t for t in tagging.tags if t.id == wanted]
        matches = by_id or resolve_tag(wanted, tagging.tags)
        if not matches:  # maybe created since the cache was filled
            await ctx.ghl.tags.refresh(loc)
            tagging = await _tagging(ctx, loc)
            matches = resolve_tag(wanted, tagging.tags)
        if len(matches) == 1:
            await _save_rule(ctx, loc, keyword, matches[0])
            return await _rules(ctx, loc, _saved(keyword, matches[0].name))
        if matches:  # several tags share that name
            return tag_picker_card(loc, keyword, wanted, _tag_choices(matches), close=True)
        close = close_matches(wanted, tagging.tags, limit=MAX_TAG_OPTIONS)
        await ctx.audit(AUDIT, "rule.add", "unknown_tag", location_id=loc, keyword=keyword, tag=wanted)
        if close:
            return tag_picker_card(loc, keyword, wanted, [Choice(t.id, t.name) for t in close], close=True)
        return tag_picker_card(loc, keyword, wanted, _tag_choices(tagging.tags), close=False)
    close = close_matches(keyword, tagging.tags, limit=MAX_TAG_OPTIONS)
    choices = [Choice(t.id, t.name) for t in close] if close else _tag_choices(tagging.tags)
    return tag_picker_card(loc, keyword, "", choices, close=bool(close))


async def _remove_rule(ctx: Context, loc: str, keyword: str) -> Card:
    store, _ = _stores(ctx)
    keyword = _clean(keyword)
    target = next((r for r in await store.rules(loc) if r.keyword == keyword or key(r.keyword) == key(keyword)), None)
    if target is None or not keyword:
        return await _rules(ctx, loc, T(f"No rule for {code(keyword)}.", f"没有关键词为 {code(keyword)} 的规则。"))
    await store.remove_rule(loc, target.keyword)
    await ctx.audit(AUDIT, "rule.remove", location_id=loc, keyword=target.keyword, tag_id=target.tag_id)
    return await _rules(ctx, loc, T(f"Removed the rule for {code(target.keyword)}.",
                                    f"已删除 {code(target.keyword)} 的规则。"))


async def _set_user(ctx: Context, loc: str, user_id: str) -> Card:
    user_id = user_id.strip()
    if not _USER_ID.match(user_id):
        return await _status(ctx, loc, T(
            "Give the GHL user id posts are created as: `/autotag user <id>` (GHL: Settings → My Staff).",
            "请提供创建帖子所用的 GHL 用户 ID：`/autotag user <id>`（GHL：设置 → 员工）。"))
    store, _ = _stores(ctx)
    await store.update(ctx.chat_id, ghl_user_id=user_id)
    await ctx.audit(AUDIT, "settings", location_id=loc, ghl_user_id=user_id)
    return await _status(ctx, loc, T("Saved.", "已保存。"))


WRITES = ("writeback", "write-back", "write", "add", "remove", "rm", "delete", "del", "user")
CHANGE = T("change auto-tagging in this group", "修改本群的自动打标签设置")
REFUSED = T("Only the group owner and admins can change auto-tagging here.",
            "只有群主和群管理员可以修改这里的自动打标签设置。")


async def _refused(ctx: Context, what: str, loc: str | None = None) -> ActionResult | None:
    """None when allowed; otherwise the refusal toast (audited)."""
    allowed, _ = await may_configure(ctx)
    if allowed:
        return None
    await ctx.audit(AUDIT, what, "refused", location_id=loc)
    return ActionResult(toast=toast("warning", REFUSED))


def _saved(keyword: str, tag_name: str) -> T:
    rule = f"{code(keyword)} → **{esc(clip(tag_name, 100))}**"
    return T(f"Saved: {rule}.", f"已保存：{rule}。")


@router.command("autotag", T("Auto-tag posts: on/off, keyword rules, write-back to GHL",
                             "自动打标签：开关、关键词规则、写回 GHL"),
                usage="/autotag on | off | rules | add <keyword> -> <tag> | remove <keyword> | writeback on|off",
                order=60)
async def autotag(ctx: Context, args: str) -> Card:
    loc = await ctx.location()
    sub, _, rest = args.strip().partition(" ")
    sub = sub.lower()
    if sub in ("", "status"):
        return await _status(ctx, loc)
    if sub in ("rules", "list"):
        return await _rules(ctx, loc)
    if sub in WRITES or _on_off(sub) is not None:
        allowed, why = await may_configure(ctx)
        if not allowed:
            await ctx.audit(AUDIT, f"autotag {sub}", "refused", location_id=loc)
            return not_allowed_card(CHANGE, why)
    if _on_off(sub) is not None:
        await _set(ctx, loc, enabled=_on_off(sub))
        return await _status(ctx, loc)
    if sub in ("writeback", "write-back", "write"):
        flag = _on_off(rest)
        if flag is None:
            return await _status(ctx, loc, T("Use `/autotag writeback on` or `off`.",
                                             "请用 `/autotag writeback on` 或 `off`。"))
        await _set(ctx, loc, writeback=flag)
        return await _status(ctx, loc)
    if sub == "add":
        return await _add_rule(ctx, loc, rest)
    if sub in ("remove", "rm", "delete", "del"):
        return await _remove_rule(ctx, loc, rest)
    if sub == "user":
        return await _set_user(ctx, loc, rest)
    return await _status(ctx, loc, T(f"I don't know {code('/autotag ' + sub[:40])}.",
                                     f"我不认识 {code('/autotag ' + sub[:40])}。"))


# ----- card actions: settings and rules ------------------------------------------------------


def _form(ctx: Context) -> dict[str, Any]:
    return dict((ctx.action.form_value if ctx.action else None) or {})


def _one(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value or "").strip()


def _many(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value] if value else []
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(str(v) for v in value if isinstance(v, str) and v))


@router.action(AutotagSet)
async def set_flags(ctx: Context, p: AutotagSet) -> ActionResult:
    loc = await ctx.location()
    if (refused := await _refused(ctx, "autotag settings", loc)) is not None:
        return refused
    await _set(ctx, loc, enabled=p.on, writeback=p.wb)
    return ActionResult(card=await _status(ctx, loc), toast=toast("success", T("Saved", "已保存")))


async def _pick_tag(ctx: Context, loc: str, tag_id: str) -> TagInfo | None:
    tagging = await _tagging(ctx, loc)
    tag = next((t for t in tagging.tags if t.id == tag_id), None)
    if tag is None and tag_id:
        await ctx.ghl.tags.refresh(loc)
        tagging = await _tagging(ctx, loc)
        tag = next((t for t in tagging.tags if t.id == tag_id), None)
    return tag


_PICK_A_TAG = T("Pick an existing tag first.", "请先选择一个已有标签。")


async def _save_picked(ctx: Context, loc: str, keyword: str, tag_id: str) -> ActionResult:
    """Save `keyword -> the picked tag` and show the rules, or ask for a tag when none was picked."""
    tag = await _pick_tag(ctx, loc, tag_id)
    if tag is None:
        return ActionResult(toast=toast("warning", _PICK_A_TAG))
    await _save_rule(ctx, loc, keyword, tag)
    return ActionResult(card=await _rules(ctx, loc, _saved(keyword, tag.name)),
                        toast=toast("success", T("Rule saved", "规则已保存")))


@router.action(AutotagRulePick)
async def pick_rule_tag(ctx: Context, p: AutotagRulePick) -> ActionResult:
    await ctx.location(p.loc)
    if (refused := await _refused(ctx, "autotag add", p.loc)) is not None:
        return refused
    tag_id = _one(_form(ctx).get("tag")) or _one(ctx.action.option if ctx.action else None)
    return await _save_picked(ctx, p.loc, p.kw, tag_id)


@router.action(AutotagRuleAdd)
async def add_rule_form(ctx: Context, p: AutotagRuleAdd) -> ActionResult:
    await ctx.location(p.loc)
    if (refused := await _refused(ctx, "autotag add", p.loc)) is not None:
        return refused
    form = _form(ctx)
    keyword = _clean(_one(form.get("keyword")))
    problem = _keyword_problem(keyword)
    if problem is not None:
        return ActionResult(toast=toast("warning", problem))
    return await _save_picked(ctx, p.loc, keyword, _one(form.get("tag")))


@router.action(AutotagRuleRemove)
async def remove_rule_form(ctx: Context, p: AutotagRuleRemove) -> ActionResult:
    await ctx.location(p.loc)
    if (refused := await _refused(ctx, "autotag remove", p.loc)) is not None:
        return refused
    keyword = _one(_form(ctx).get("keyword"))
    if not keyword:
        return ActionResult(toast=toast("warning", T("Pick a rule first.", "请先选择一条规则。")))
    return ActionResult(card=await _remove_rule(ctx, p.loc, keyword))


# ----- Lark → GHL: suggestion card -----------------------------------------------------------


def worth_suggesting(text: str, message_type: str | None = None) -> bool:
    """A Lark rich-text `post` with some text, or a post-shaped text message: long, or several lines."""
    size = len(text.strip())
    if message_type == "post":
        return size > 0
    return size >= LONG_TEXT_CHARS or ("\n" in text.strip() and size >= MULTILINE_MIN_CHARS)


def _live_accounts(accounts: list[Account]) -> list[Choice]:
    live = [a for a in accounts if not a.is_expired]
    live.sort(key=lambda a: ((a.platform or "").lower(), (a.name or "").lower(), a.id))
    return [Choice(a.id, f"{a.name or a.id} ({a.platform or '?'})") for a in live]


def _tag_views(found: Suggestions) -> list[TagView]:
    return [TagView(s.tag_id, s.tag_name, tuple(ReasonView(r.kind, r.matched, r.keyword) for r in s.reasons))
            for s in found.tags]


def _options(tagging: LocationTagging, found: Suggestions) -> list[Choice]:
    first = [Choice(s.tag_id, s.tag_name) for s in found.tags]
    seen = {c.value for c in first}
    rest = [c for c in _tag_choices(tagging.tags) if c.value not in seen]
    return (first + rest)[:MAX_TAG_OPTIONS]


def _default_when(ctx: Context) -> str:
    zone = ZoneInfo(ctx.services.settings.default_timezone)
    local = datetime.fromtimestamp(ctx.services.clock.time(), zone) + timedelta(hours=2)
    return local.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%d %H:%M")


async def _suggestion_view(ctx: Context, loc: str, message_id: str, summary: str, *, note: T | None = None,
                           tags: list[str] | None = None, accounts: list[str] | None = None,
                           when: str | None = None) -> SuggestionView:
    tagging = await _tagging(ctx, loc)
    found = tagging.suggest(summary)
    choices = _live_accounts((await ctx.ghl.client.accounts(loc)).accounts)
    store, _ = _stores(ctx)
    user = await posting_user(ctx.services, await store.get(ctx.chat_id), loc)
    if accounts is None:
        accounts = [choices[0].value] if len(choices) == 1 else []
    return SuggestionView(
        location_id=loc, message_id=message_id, excerpt=summary, suggested=_tag_views(found),
        missing=[m.hashtag for m in found.missing], tag_options=_options(tagging, found),
        selected_tags=found.tag_ids if tags is None else tags, accounts=choices, selected_accounts=accounts,
        timezone=ctx.services.settings.default_timezone, default_when=when or _default_when(ctx),
        user_ready=user is not None, note=note)


@router.message()
async def suggest_for_message(ctx: Context, text: str) -> Card | None:
    if not worth_suggesting(text, ctx.message_type) or ctx.message_id is None:
        return None
    if ctx.services.ghl is None or not ctx.ghl.configured:
        return None
    store, posting = _stores(ctx)
    if not (await store.get(ctx.chat_id)).enabled:
        return None
    loc = await ctx.location()
    view = await _suggestion_view(ctx, loc, ctx.message_id, text)
    await posting.save_draft(ctx.message_id, ctx.chat_id, loc, text, ctx.user_id or None)
    await ctx.audit(AUDIT, "suggest", location_id=loc, message_id=ctx.message_id,
                    tags=[t.id for t in view.suggested], missing=view.missing)
    return suggestion_card(view)


# ----- Lark → GHL: create the post -----------------------------------------------------------

_SCHEDULE_PROBLEMS: dict[str, T] = {
    "empty": T("Enter a time to schedule for (YYYY-MM-DD HH:MM).", "请输入定时时间（YYYY-MM-DD HH:MM）。"),
    "format": T("Write the time as YYYY-MM-DD HH:MM, e.g. 2026-03-01 09:30.",
                "时间格式为 YYYY-MM-DD HH:MM，例如 2026-03-01 09:30。"),
    "zone": T("Unknown time zone; use an IANA name such as Asia/Shanghai.",
              "未知时区；请使用 IANA 名称，如 Asia/Shanghai。"),
    "past": T("That time has passed: pick a time at least a minute from now.",
              "该时间已过去：请选择至少一分钟之后的时间。"),
    "far": T("Schedule at most a year ahead.", "最多只能定时到一年以内。"),
}


def _local(iso: str | None, tz_name: str) -> str | None:
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return when.astimezone(ZoneInfo(tz_name)).strftime("%Y-%m-%d %H:%M ") + tz_name


async def _created(ctx: Context, loc: str, summary: str, outcome: CreateOutcome,
                   accounts: dict[str, str] | None = None) -> Card:
    body = outcome.body
    tz = ctx.services.settings.default_timezone
    tag_ids = [str(t) for t in body.get("tags") or []]
    names = await ctx.ghl.tags.names(loc, tag_ids) if tag_ids else {}
    if accounts is None:
        try:
            accounts = {c.value: c.label for c in _live_accounts((await ctx.ghl.client.accounts(loc)).accounts)}
        except GhlError:
            accounts = {}
    assert outcome.post_id is not None and outcome.status != "in_progress"
    return created_card(CreatedView(
        location_id=loc, post_id=outcome.post_id, outcome=outcome.status,
        mode="schedule" if body.get("scheduleDate") else "draft", excerpt=summary,
        tags=[names.get(t, t) for t in tag_ids], accounts=[accounts.get(a, a) for a in body.get("accountIds") or []],
        when=_local(body.get("scheduleDate"), tz)))


@router.action(AutotagPost)
async def create_post(ctx: Context, p: AutotagPost) -> ActionResult:
    await ctx.location(p.loc)
    _, posting = _stores(ctx)
    draft = await posting.draft(p.m)
    if draft is None or draft.location_id != p.loc or draft.chat_id != ctx.chat_id:
        return ActionResult(toast=toast("warning", T("This card is out of date: send the text again.",
                                                     "这张卡片已过期：请重新发送文字。")))
    done = await posting.created(p.m)
    if done is not None and done.status == "created" and done.post_id:  # a second click: nothing to send
        outcome = CreateOutcome("already", done.post_id, done.request)
        await ctx.audit(AUDIT, "post.create", "duplicate", location_id=p.loc, message_id=p.m, post_id=done.post_id)
        return ActionResult(card=await _created(ctx, p.loc, draft.summary, outcome),
                            toast=toast("info", T("Already created", "已创建过")))
    form = _form(ctx)
    tag_ids, account_ids, when_raw = _many(form.get("tags")), _many(form.get("accounts")), _one(form.get("when"))
    if not account_ids:
        return ActionResult(toast=toast("warning", T("Pick at least one account to publish to.",
                                                     "请至少选择一个发布账号。")))
    schedule = None
    if p.mode == "schedule":
        try:
            schedule = parse_schedule(when_raw, tz_name=ctx.services.settings.default_timezone,
                                      now=datetime.fromtimestamp(ctx.services.clock.time(), UTC))
        except ScheduleError as exc:
            return ActionResult(toast=toast("warning", _SCHEDULE_PROBLEMS[exc.problem]))
    store, _ = _stores(ctx)
    user = await posting_user(ctx.services, await store.get(ctx.chat_id), p.loc)
    if user is None:
        return ActionResult(toast=toast("warning", T("Set the GHL user posts are created as: /autotag user <id>.",
                                                     "请先设置创建帖子的 GHL 用户：/autotag user <id>。")))

    async def again(note: T) -> Card:
        view = await _suggestion_view(ctx, p.loc, p.m, draft.summary, note=note, tags=tag_ids,
                                      accounts=account_ids, when=when_raw or None)
        return suggestion_card(view)

    tagging = await _tagging(ctx, p.loc)
    gone = [t for t in tag_ids if t not in tagging.tag_ids]
    if gone:
        await ctx.ghl.tags.refresh(p.loc)
        tagging = await _tagging(ctx, p.loc)
        gone = [t for t in tag_ids if t not in tagging.tag_ids]
    if gone:
        tag_ids = [t for t in tag_ids if t not in gone]
        return ActionResult(card=await again(T("Some chosen tags no longer exist in GHL; check the tags and try again.",
                                               "部分所选标签在 GHL 中已不存在；请检查标签后重试。")))
    labels = {c.value: c.label for c in _live_accounts((await ctx.ghl.client.accounts(p.loc)).accounts)}
    live = set(labels)
    if not set(account_ids) <= live:
        account_ids = [a for a in account_ids if a in live]
        return ActionResult(card=await again(T("Some chosen accounts are no longer connected (or expired); pick again.",
                                               "部分所选账号已断开或过期；请重新选择。")))
    request = PostRequest(tuple(account_ids), tuple(tag_ids), draft.summary, user, schedule)
    try:
        outcome = await create_once(ctx.services, key=p.m, location_id=p.loc, chat_id=ctx.chat_id, request=request)
    except GhlError as exc:
        await ctx.audit(AUDIT, "post.create", "error", location_id=p.loc, message_id=p.m, tags=tag_ids,
                        accounts=account_ids, mode=p.mode, error=exc.message[:300])
        if exc.kind == "unavailable":  # the answer was lost: the next click looks the post up first
            note = T("GHL did not answer clearly, so the post may or may not exist. Click again: I check GHL "
                     "before creating anything, so there will be no duplicate.",
                     "GHL 没有明确答复，帖子可能已创建也可能没有。请再点一次：我会先在 GHL 中查找，不会重复创建。")
            return ActionResult(card=await again(note), toast=toast("warning", T("GHL did not answer", "GHL 未答复")))
        if exc.kind in ("bad_request", "rate_limited"):
            note = T("GHL did not create the post: ", "GHL 没有创建帖子：") + T.same(exc.message[:300])
            return ActionResult(card=await again(note), toast=toast("error", T("GHL refused the post",
                                                                               "GHL 拒绝了该帖子")))
        return ActionResult(card=ghl_error_card(exc.kind, exc.location_id, exc.message, trace_id=exc.trace_id))
    if outcome.status == "in_progress":
        return ActionResult(toast=toast("info", T("This post is still being created; try again in a minute.",
                                                  "该帖子仍在创建中；请一分钟后再试。")))
    result = {"created": "ok", "already": "duplicate", "recovered": "recovered"}[outcome.status]
    await ctx.audit(AUDIT, "post.create", result, location_id=p.loc, message_id=p.m, post_id=outcome.post_id,
                    tags=outcome.body.get("tags"), accounts=outcome.body.get("accountIds"), mode=p.mode,
                    schedule=outcome.body.get("scheduleDate"))
    title = T("Post scheduled", "已定时发布") if outcome.body.get("scheduleDate") else T("Draft created", "草稿已创建")
    return ActionResult(card=await _created(ctx, p.loc, draft.summary, outcome, labels),
                        toast=toast("success", title))

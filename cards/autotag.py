"""Auto-tagging cards: status, rules, the tag picker, the suggestion/post card and announcements.

Plain data in, Card JSON 2.0 out. Every card that talks about a tag that does not exist says
where tags come from: people create them in GHL's Social Planner; GHL's API cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from cards.i18n import T, join
from cards.kit import (
    Card,
    Element,
    button,
    card,
    clip,
    code,
    count_elements,
    esc,
    form,
    hr,
    markdown,
    option,
    row,
    select,
    size_bytes,
    text_input,
)
from cards.payloads import Payload, RunCommand, register

MAX_TAG_OPTIONS = 40  # what handlers offer at most; the builders trim further when a card grows too big
KEYWORD_MAX = 50
CARD_BUDGET_BYTES = 28 * 1024  # Lark's limit is 30 KB
CARD_BUDGET_COMPONENTS = 190  # Lark's limit is 200

NO_TAG_API = T("Tags are created by people in GHL's Social Planner; GHL's API cannot create tags, so I can only "
               "use tags that already exist.",
               "标签需由人在 GHL 社媒排期中创建；GHL 的 API 无法创建标签，所以我只能使用已存在的标签。")


# ----- payloads ------------------------------------------------------------------------------


@register
class AutotagPost(Payload):
    """"Create draft" / "Schedule" on a suggestion card; choices arrive in `form_value`."""

    kind: ClassVar[str] = "autotag.post"
    loc: str
    m: str  # the chat message the post is made from (also the idempotency key)
    mode: Literal["draft", "schedule"]


@register
class AutotagRulePick(Payload):
    """Save a rule with the tag picked in `form_value["tag"]`."""

    kind: ClassVar[str] = "autotag.rule"
    loc: str
    kw: str


@register
class AutotagRuleAdd(Payload):
    """The rules card's add form: `form_value["keyword"]` and `form_value["tag"]`."""

    kind: ClassVar[str] = "autotag.radd"
    loc: str


@register
class AutotagRuleRemove(Payload):
    """The rules card's remove form: `form_value["keyword"]`."""

    kind: ClassVar[str] = "autotag.rdel"
    loc: str


@register
class AutotagSet(Payload):
    kind: ClassVar[str] = "autotag.set"
    on: bool | None = None
    wb: bool | None = None


# ----- plain data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class ReasonView:
    kind: str  # name | hashtag | rule
    matched: str
    keyword: str | None = None


@dataclass(frozen=True)
class TagView:
    id: str
    name: str
    reasons: tuple[ReasonView, ...] = ()


@dataclass(frozen=True)
class RuleView:
    keyword: str
    tag_name: str
    missing: bool = False  # the tag no longer exists in GHL


@dataclass(frozen=True)
class StatusView:
    location_id: str
    enabled: bool
    writeback: bool
    rules: int
    user_id: str | None
    user_source: Literal["chat", "installation", "none"]


@dataclass(frozen=True)
class SuggestionView:
    location_id: str
    message_id: str
    excerpt: str
    suggested: list[TagView]
    missing: list[str]  # hashtags with no tag behind them
    tag_options: list[Choice]
    selected_tags: list[str]
    accounts: list[Choice]
    selected_accounts: list[str]
    timezone: str
    default_when: str
    user_ready: bool
    note: T | None = None


@dataclass(frozen=True)
class CreatedView:
    location_id: str
    post_id: str
    outcome: Literal["created", "already", "recovered"]
    mode: Literal["draft", "schedule"]
    excerpt: str
    tags: list[str]
    accounts: list[str]
    when: str | None = None  # local schedule time, for "schedule"


AnnounceOutcome = Literal["written", "suggested", "had_tags", "nothing", "failed"]


@dataclass(frozen=True)
class AnnouncedPost:
    post_id: str
    excerpt: str
    platform: str | None
    when: str | None  # "YYYY-MM-DD HH:MM UTC"
    tags: list[str]  # names, after any write
    added: list[TagView] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    outcome: AnnounceOutcome = "nothing"
    error: str | None = None


# ----- size limits ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """How much of each list a card shows; cards step down until they fit Lark's limits."""

    options: int  # tag options in a select
    accounts: int
    items: int  # suggested tags / rules / announced posts listed
    reasons: int  # reasons per tag
    names: int  # listed names (tags of a post, missing hashtags)
    label: int  # characters of a name or label
    text: int  # characters of an excerpt


LEVELS = (
    Limits(options=40, accounts=20, items=15, reasons=3, names=15, label=40, text=300),
    Limits(options=25, accounts=15, items=8, reasons=2, names=8, label=30, text=160),
    Limits(options=12, accounts=8, items=4, reasons=1, names=4, label=20, text=80),
    Limits(options=5, accounts=4, items=2, reasons=1, names=2, label=12, text=40),
)


def _fits(c: Card) -> bool:
    return size_bytes(c) <= CARD_BUDGET_BYTES and count_elements(c) <= CARD_BUDGET_COMPONENTS


def fit(build: Callable[[Limits], Card]) -> Card:
    """The richest version of a card that fits Lark's 30 KB / 200 components."""
    for lim in LEVELS[:-1]:
        c = build(lim)
        if _fits(c):
            return c
    return build(LEVELS[-1])


# ----- helpers -------------------------------------------------------------------------------


excerpt = clip  # the card shows excerpts of post text


def _more(shown: int, total: int) -> T:
    return T(f"\n…and {total - shown} more", f"\n……还有 {total - shown} 个") if total > shown else T("", "")


def _quote(text: str, lim: Limits) -> T:
    return T.same("> " + esc(excerpt(text, lim.text)) if text.strip() else "> …")


def _opts(choices: list[Choice], n: int, lim: Limits) -> list[dict[str, object]]:
    return [option(T.same(excerpt(c.label, lim.label)), c.value) for c in choices[:n]]


def reason_text(r: ReasonView, lim: Limits = LEVELS[0]) -> T:
    m = esc(excerpt(r.matched, lim.label))
    if r.kind == "hashtag":
        return T(f"hashtag {m}", f"话题标签 {m}")
    if r.kind == "rule":
        kw = esc(excerpt(r.keyword or r.matched, lim.label))
        return T(f"rule “{kw}” (matched “{m}”)", f"规则“{kw}”（匹配“{m}”）")
    return T(f"mentions “{m}”", f"提到“{m}”")


def tag_line(t: TagView, lim: Limits = LEVELS[0]) -> T:
    reasons = [reason_text(r, lim) for r in t.reasons[:lim.reasons]]
    if len(t.reasons) > lim.reasons:
        reasons.append(T("…", "…"))
    why = T("; ".join(r.en for r in reasons), "；".join(r.zh for r in reasons))
    name = esc(excerpt(t.name, lim.label))
    return T.same(f"- **{name}** — ") + why


def _tag_lines(tags: list[TagView], lim: Limits) -> T:
    return join([tag_line(t, lim) for t in tags[:lim.items]]) + _more(min(len(tags), lim.items), len(tags))


def _names(names: list[str], lim: Limits, *, prefix: str = "", bold: bool = False) -> str:
    shown = [prefix + esc(excerpt(n, lim.label)) for n in names[:lim.names]]
    out = ", ".join(f"**{n}**" if bold else n for n in shown)
    return out + (f", … (+{len(names) - len(shown)})" if len(names) > len(shown) else "")


def _missing_note(missing: list[str], lim: Limits) -> T:
    listed = _names(missing, lim, prefix="#")
    return (T(f"**Not tags in GHL:** {listed}\n", f"**GHL 中没有这些标签：** {listed}\n") + NO_TAG_API
            + T(" Create them there and I will suggest them next time.", "在那里创建后，我下次就会推荐它们。"))


def _where(location_id: str) -> T:
    return T(f"Location {location_id}", f"位置 {location_id}")


def _on(flag: bool) -> T:
    return T("on", "开启") if flag else T("off", "关闭")


# ----- status & settings ---------------------------------------------------------------------

USAGE = T("`/autotag on | off` · `/autotag rules` · `/autotag add <keyword> -> <tag>` · "
          "`/autotag remove <keyword>` · `/autotag writeback on | off` · `/autotag user <GHL user id>`",
          "`/autotag on | off` · `/autotag rules` · `/autotag add <关键词> -> <标签>` · "
          "`/autotag remove <关键词>` · `/autotag writeback on | off` · `/autotag user <GHL 用户 ID>`")


def status_card(v: StatusView, note: T | None = None) -> Card:
    if v.user_id:
        src = (T(" (set in this chat)", "（本群设置）") if v.user_source == "chat"
               else T(" (the app's installer)", "（应用安装者）"))
        user = T.same(code(excerpt(v.user_id, 64))) + src
    else:
        user = T("not set — `/autotag user <GHL user id>` (needed to create posts)",
                 "未设置——`/autotag user <GHL 用户 ID>`（创建帖子需要）")
    lines = [
        T("**Auto-tagging:** ", "**自动打标签：**") + _on(v.enabled),
        T("**Write-back to GHL:** ", "**写回 GHL：**") + _on(v.writeback),
        T(f"**Rules for this location:** {v.rules}", f"**本位置的规则：** {v.rules} 条"),
        T("**Posts are created as:** ", "**创建帖子的用户：**") + user,
    ]
    body: list[Element] = []
    if note is not None:
        body.append(markdown(note))
    body.append(markdown(join(lines)))
    body.append(markdown(T(
        "While on, a rich-text post or a long message in this chat gets a card suggesting existing tags, "
        "with buttons to create a draft or schedule it in the Social Planner; new published posts of this "
        "location are announced here with suggested tags. With write-back on, those tags are also written "
        "onto published posts that have none.",
        "开启后，本群中的富文本消息或长消息会收到一张推荐已有标签的卡片，可一键在社媒排期中创建草稿或定时发布；"
        "本位置新发布的帖子会在此通告并附推荐标签。开启写回后，这些标签也会写入没有标签的已发布帖子。")))
    body.append(row(
        button(T("Turn off", "关闭") if v.enabled else T("Turn on", "开启"), AutotagSet(on=not v.enabled),
               type="default" if v.enabled else "primary"),
        button(T("Write-back off", "关闭写回") if v.writeback else T("Write-back on", "开启写回"),
               AutotagSet(wb=not v.writeback),
               confirm=None if v.writeback else (
                   T("Write tags to GHL?", "写入 GHL 标签？"),
                   T("Suggested tags will be added to new published posts that have no tags.",
                     "推荐的标签将被添加到没有标签的新发布帖子上。"))),
        button(T("Rules", "规则"), RunCommand(command="autotag", args="rules")),
    ))
    body.append(markdown(USAGE))
    return card(T("Auto-tagging", "自动打标签"), body, subtitle=_where(v.location_id), template="indigo")


# ----- rules ---------------------------------------------------------------------------------


def _rule_line(r: RuleView, lim: Limits) -> T:
    warn = T(" — ⚠️ tag no longer exists: paused", " —— ⚠️ 标签已不存在：已暂停") if r.missing else T("", "")
    return T.same(f"- {code(excerpt(r.keyword, lim.label))} → **{esc(excerpt(r.tag_name, lim.label))}**") + warn


def rules_card(location_id: str, rules: list[RuleView], tags: list[Choice], note: T | None = None) -> Card:
    def build(lim: Limits) -> Card:
        body: list[Element] = []
        if note is not None:
            body.append(markdown(T(excerpt(note.en, lim.text * 2), excerpt(note.zh, lim.text * 2))))
        if rules:
            shown = rules[:lim.items * 2]
            body.append(markdown(T(f"**{len(rules)} rules** (keyword → tag):",
                                   f"**{len(rules)} 条规则**（关键词 → 标签）：") + "\n"
                                 + join([_rule_line(r, lim) for r in shown]) + _more(len(shown), len(rules))))
        else:
            body.append(markdown(T("No rules yet. A rule adds a tag whenever its keyword appears.",
                                   "还没有规则。规则会在出现关键词时添加对应标签。")))
        body.append(hr())
        if tags:
            body.append(form("rule_add", [
                text_input("keyword", placeholder=T("Keyword, e.g. sale", "关键词，例如 促销"), required=True,
                           max_length=KEYWORD_MAX, label=T("Keyword", "关键词")),
                select("tag", _opts(tags, lim.options, lim), placeholder=T("Existing tag", "已有标签"), required=True),
                button(T("Add rule", "添加规则"), AutotagRuleAdd(loc=location_id), type="primary", name="add",
                       submit=True),
            ]))
            body.append(markdown(NO_TAG_API))
        else:
            body.append(markdown(T("This location has no tags yet. ", "该位置还没有标签。") + NO_TAG_API))
        if rules:
            removable = [Choice(r.keyword, r.keyword) for r in rules]
            body.append(form("rule_remove", [
                select("keyword", _opts(removable, lim.options, lim), placeholder=T("Rule to remove", "要删除的规则"),
                       required=True),
                button(T("Remove rule", "删除规则"), AutotagRuleRemove(loc=location_id), type="danger", name="remove",
                       submit=True),
            ]))
        return card(T("Auto-tag rules", "自动打标签规则"), body, subtitle=_where(location_id), template="indigo")
    return fit(build)


def tag_picker_card(location_id: str, keyword: str, wanted: str, choices: list[Choice], *, close: bool) -> Card:
    """`/autotag add kw -> X` where no tag X exists: pick an existing one instead."""
    def build(lim: Limits) -> Card:
        w, kw = esc(excerpt(wanted, lim.text)), esc(excerpt(keyword, lim.label))
        intro = T(f"There is no tag named **{w}** in this location. ", f"该位置没有名为 **{w}** 的标签。") if wanted \
            else T("", "")
        body: list[Element] = [markdown(intro + NO_TAG_API)]
        if choices:
            lead = (T("Tags with a close name:", "名称相近的标签：") if close
                    else T("Pick one of the existing tags:", "请从已有标签中选择："))
            body.append(markdown(lead + T(f" the rule will add it when “{kw}” appears.",
                                          f"出现“{kw}”时，规则会添加它。")))
            body.append(form("rule_pick", [
                select("tag", _opts(choices, lim.options, lim), placeholder=T("Existing tag", "已有标签"),
                       required=True, initial=[choices[0].value] if close and len(choices) == 1 else None),
                button(T("Save rule", "保存规则"), AutotagRulePick(loc=location_id, kw=keyword), type="primary",
                       name="save", submit=True),
            ]))
        else:
            body.append(markdown(T("This location has no tags at all yet.", "该位置还没有任何标签。")))
        return card(T("Pick an existing tag", "选择已有标签"), body, subtitle=_where(location_id), template="orange")
    return fit(build)


def rules_missing_card(location_id: str, rules: list[RuleView]) -> Card:
    def build(lim: Limits) -> Card:
        shown = rules[:lim.items * 2]
        lines = join([_rule_line(RuleView(r.keyword, r.tag_name), lim) for r in shown]) + _more(len(shown), len(rules))
        return card(T("Auto-tag rules paused", "自动打标签规则已暂停"), [
            markdown(T("These rules point at tags that no longer exist in GHL, so they are paused:",
                       "这些规则指向的标签在 GHL 中已不存在，因此已暂停：") + "\n" + lines),
            markdown(T("Re-create the tag in the Social Planner (GHL's API cannot create tags) and the rule resumes, "
                       "or point the rule at another tag with `/autotag add <keyword> -> <tag>`.",
                       "在社媒排期中重新创建该标签（GHL 的 API 无法创建标签）后规则会自动恢复，"
                       "或用 `/autotag add <关键词> -> <标签>` 改为其他标签。")),
            row(button(T("Rules", "规则"), RunCommand(command="autotag", args="rules"))),
        ], subtitle=_where(location_id), template="orange")
    return fit(build)


# ----- Lark → GHL ----------------------------------------------------------------------------


def suggestion_card(v: SuggestionView) -> Card:
    def build(lim: Limits) -> Card:
        body: list[Element] = [markdown(_quote(v.excerpt, lim))]
        if v.note is not None:
            body.append(markdown(T(excerpt(v.note.en, lim.text), excerpt(v.note.zh, lim.text))))
        if v.suggested:
            body.append(markdown(T("**Suggested tags and why:**", "**推荐标签及原因：**") + "\n"
                                 + _tag_lines(v.suggested, lim)))
        else:
            body.append(markdown(T("No existing tag matches this text; pick tags below if you like.",
                                   "没有已有标签匹配这段文字；可以在下面手动选择。")))
        if v.missing:
            body.append(markdown(_missing_note(v.missing, lim)))
        if not v.accounts:
            body.append(markdown(T("This location has no connected social account that is not expired: connect or "
                                   "reconnect one in the Social Planner, then send the text again.",
                                   "该位置没有未过期的已连接社交账号：请在社媒排期中连接或重新连接账号，然后重新发送文字。")))
            return card(T("Suggested tags", "推荐标签"), body, subtitle=_where(v.location_id), template="indigo")
        if not v.user_ready:
            body.append(markdown(T("Before creating posts, tell me which GHL user they are created as: "
                                   "`/autotag user <GHL user id>`.",
                                   "创建帖子前，请先设置以哪个 GHL 用户创建：`/autotag user <GHL 用户 ID>`。")))
        fields: list[Element] = []
        tag_options = v.tag_options[:lim.options]
        if tag_options:
            offered = {c.value for c in tag_options}
            fields.append(select("tags", _opts(tag_options, lim.options, lim), placeholder=T("Tags", "标签"),
                                 multi=True, initial=[t for t in v.selected_tags if t in offered]))
        accounts = v.accounts[:lim.accounts]
        offered_accounts = {c.value for c in accounts}
        fields.append(select("accounts", _opts(accounts, lim.accounts, lim),
                             placeholder=T("Accounts to publish to", "发布到的账号"), multi=True, required=True,
                             initial=[a for a in v.selected_accounts if a in offered_accounts]))
        fields.append(text_input("when", placeholder=T("YYYY-MM-DD HH:MM", "YYYY-MM-DD HH:MM"),
                                 label=T(f"Schedule for ({v.timezone})", f"定时（{v.timezone}）"), max_length=40,
                                 default=v.default_when))
        fields.append(row(
            button(T("Create draft", "创建草稿"), AutotagPost(loc=v.location_id, m=v.message_id, mode="draft"),
                   type="primary", name="draft", submit=True),
            button(T("Schedule", "定时发布"), AutotagPost(loc=v.location_id, m=v.message_id, mode="schedule"),
                   name="schedule", submit=True),
        ))
        body.append(form("post_form", fields))
        return card(T("Suggested tags", "推荐标签"), body, subtitle=_where(v.location_id), template="indigo")
    return fit(build)


def created_card(v: CreatedView) -> Card:
    def build(lim: Limits) -> Card:
        when = esc(v.when or "?")
        if v.mode == "schedule":
            what = T(f"Scheduled for **{when}** in the Social Planner.", f"已在社媒排期中定时于 **{when}** 发布。")
        else:
            what = T("Saved as a **draft** in the Social Planner.", "已在社媒排期中保存为**草稿**。")
        lines = [what, T(f"Post id {code(v.post_id)}", f"帖子 ID {code(v.post_id)}")]
        if v.outcome == "already":
            lines.append(T("This message was already posted: nothing new was created.",
                           "这条消息已经发布过：没有重复创建。"))
        elif v.outcome == "recovered":
            lines.append(T("The post from an earlier, interrupted attempt was found in GHL: no duplicate was created.",
                           "在 GHL 中找到了之前中断的尝试所创建的帖子：没有重复创建。"))
        tags = _names(v.tags, lim, bold=True)
        lines.append(T(f"Tags: {tags}", f"标签：{tags}") if v.tags else T("Tags: none", "标签：无"))
        if v.accounts:
            accounts = _names(v.accounts, lim)
            lines.append(T(f"Accounts: {accounts}", f"账号：{accounts}"))
        title = T("Post scheduled", "已定时发布") if v.mode == "schedule" else T("Draft created", "草稿已创建")
        return card(title, [markdown(_quote(v.excerpt, lim)), markdown(join(lines))], subtitle=_where(v.location_id),
                    template="green")
    return fit(build)


# ----- GHL → Lark ----------------------------------------------------------------------------

_OUTCOME: dict[str, T] = {
    "written": T("✅ written to the post in GHL", "✅ 已写入 GHL 中的帖子"),
    "suggested": T("💡 suggested (write-back is off: `/autotag writeback on`)",
                   "💡 仅推荐（写回已关闭：`/autotag writeback on`）"),
    "had_tags": T("already tagged in GHL", "在 GHL 中已有标签"),
    "nothing": T("no existing tag matches", "没有匹配的已有标签"),
    "failed": T("❌ could not write the tags", "❌ 标签写入失败"),
}


def _announced(p: AnnouncedPost, lim: Limits) -> T:
    head = " · ".join(x for x in (esc(excerpt(p.platform or "post", 20)), p.when or "", code(p.post_id)) if x)
    parts = [T.same(f"**{head}**"), _quote(p.excerpt, lim)]
    tags = _names(p.tags, lim, bold=True)
    parts.append(T(f"Tags: {tags}", f"标签：{tags}") if p.tags else T("Tags: none", "标签：无"))
    if p.added:
        parts.append(T("Auto-tag:", "自动标签：") + "\n" + _tag_lines(p.added, lim))
    outcome = _OUTCOME[p.outcome]
    if p.outcome == "failed" and p.error:
        error = esc(excerpt(p.error, lim.text))
        outcome = outcome + T(f" ({error})", f"（{error}）")
    parts.append(outcome)
    if p.missing:
        listed = _names(p.missing, lim, prefix="#")
        parts.append(T(f"Hashtags with no tag in GHL: {listed}", f"GHL 中没有对应标签的话题：{listed}"))
    return join(parts)


def announce_card(location_id: str, posts: list[AnnouncedPost]) -> Card:
    def build(lim: Limits) -> Card:
        shown = posts[:max(1, lim.items - 5)]
        body: list[Element] = []
        for i, p in enumerate(shown):
            if i:
                body.append(hr())
            body.append(markdown(_announced(p, lim)))
        if len(posts) > len(shown):
            more = len(posts) - len(shown)
            body.append(markdown(T(f"…and {more} more (see `/audit kind:tagging`).",
                                   f"……还有 {more} 篇（见 `/audit kind:tagging`）。")))
        if any(p.missing for p in posts):
            body.append(markdown(NO_TAG_API))
        title = (T("New published post", "新发布的帖子") if len(posts) == 1
                 else T(f"{len(posts)} new published posts", f"{len(posts)} 篇新发布的帖子"))
        return card(title, body, subtitle=_where(location_id), template="turquoise")
    return fit(build)

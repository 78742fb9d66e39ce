"""Digest cards: the daily digest itself, its "no data yet" variants, and the `/digest` settings cards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from cards.i18n import T, join
from cards.kit import Card, Element, button, card, chart, clip, columns, esc, hr, markdown, row
from cards.payloads import RunCommand
from cards.stats import METRIC_LABELS, fmt_change, fmt_num, platform_name

EXAMPLE = "/digest on 09:00 Asia/Shanghai"
USAGE = "/digest on HH:MM [IANA zone] | off | now | status"


@dataclass(frozen=True)
class DayChange:
    key: str  # posts / impressions / likes / comments
    yesterday: float
    before: float


@dataclass(frozen=True)
class WeekChange:
    key: str
    total: float  # last 7 days
    change: float | None  # % against the 7 days before, as GHL reports it
    own_before: float | None  # the same figure in our own snapshot from 7 days earlier


@dataclass(frozen=True)
class Mover:
    platform: str
    week_change: float | None  # impressions % (last 7 days against the 7 before)
    yesterday: float | None  # impressions yesterday
    day_delta: float | None  # impressions yesterday minus the day before


@dataclass(frozen=True)
class TagCount:
    name: str
    posts: int


@dataclass(frozen=True)
class DigestData:
    location: str
    local_date: str  # the chat's local date the digest is for
    tz: str  # IANA name
    yesterday: str  # ISO date of the last day in GHL's window
    day_before: str
    week_window: str  # "2026-01-01 – 2026-01-07"
    days: list[DayChange]
    week: list[WeekChange]
    own_reference: str | None  # date of our snapshot 7 days earlier, when we have one
    movers: list[Mover]
    tags: list[TagCount] | None  # None: posts could not be read this time
    trend: list[tuple[str, float]]  # (MM-DD, impressions), from our stored history
    taken_at: str  # when the statistics were read, "2026-01-02 08:00 UTC"


@dataclass(frozen=True)
class ScheduleView:
    enabled: bool
    hhmm: str | None
    tz: str
    next_send: str | None  # "2026-03-09 09:02" in `tz`, or None
    last: str | None = None  # "2026-03-08: sent"
    changed: T | None = None  # what the command just did


def _is_day_before(day: str, local_date: str) -> bool:
    try:
        return date.fromisoformat(day) == date.fromisoformat(local_date) - timedelta(days=1)
    except ValueError:
        return False


def pct(now: float, before: float) -> float | None:
    return None if before == 0 else (now - before) / abs(before) * 100.0


def _label(key: str) -> T:
    return METRIC_LABELS.get(key, T.same(key))


def _signed(v: float) -> str:
    return ("+" if v > 0 else "−" if v < 0 else "±") + fmt_num(abs(v))


def _day_cell(c: DayChange) -> list[Element]:
    lab, ch = _label(c.key), fmt_change(pct(c.yesterday, c.before))
    head = f"**{fmt_num(c.yesterday)}**  {ch}\n<font color='grey'>"
    return [markdown(T(f"{lab.en}\n{head}before: {fmt_num(c.before)}</font>",
                       f"{lab.zh}\n{head}前一天：{fmt_num(c.before)}</font>"))]


def _week_cell(w: WeekChange) -> list[Element]:
    lab = _label(w.key)
    own = ""
    if w.own_before is not None:
        delta = w.total - w.own_before
        own = f"\n<font color='grey'>{_signed(delta)}</font>"
    return [markdown(T(f"{lab.en}\n**{fmt_num(w.total)}**  {fmt_change(w.change)}{own}",
                       f"{lab.zh}\n**{fmt_num(w.total)}**  {fmt_change(w.change)}{own}"))]


def _grid(cells: list[list[Element]], per_row: int = 3) -> list[Element]:
    return [columns(*cells[i:i + per_row]) for i in range(0, len(cells), per_row)]


def _mover_line(m: Mover) -> T:
    parts_en = [f"**{platform_name(m.platform)}** {fmt_change(m.week_change)} (7 days)"]
    parts_zh = [f"**{platform_name(m.platform)}** {fmt_change(m.week_change)}（7 天）"]
    if m.yesterday is not None:
        delta = f" ({_signed(m.day_delta)})" if m.day_delta is not None else ""
        parts_en.append(f"yesterday {fmt_num(m.yesterday)} impressions{delta}")
        parts_zh.append(f"昨天曝光 {fmt_num(m.yesterday)}{delta}")
    return T(" · ".join(parts_en), " · ".join(parts_zh))


def _buttons(location: str) -> Element:
    return row(button(T("Open /stats", "打开 /stats"), RunCommand(command="stats", args=location), type="primary"),
               button(T("Open /tags", "打开 /tags"), RunCommand(command="tags")),
               button(T("Digest settings", "摘要设置"), RunCommand(command="digest", args="status")))


def digest_card(d: DigestData) -> Card:
    body: list[Element] = []
    if d.days:
        if _is_day_before(d.yesterday, d.local_date):
            head = T(f"**Yesterday** ({d.yesterday})", f"**昨天**（{d.yesterday}）")
        else:  # the latest statistics are older than yesterday: say which day they describe
            head = T(f"**Latest reported day** ({d.yesterday})", f"**最近有数据的一天**（{d.yesterday}）")
        body.append(markdown(head + T(f" against the day before ({d.day_before})", f"与前一天（{d.day_before}）对比")))
        body += _grid([_day_cell(c) for c in d.days], per_row=4)
    body.append(hr())
    own = (T(f"; grey: change since our snapshot of {d.own_reference}",
             f"；灰色：与我们 {d.own_reference} 的快照相比的变化") if d.own_reference else T.same(""))
    body.append(markdown(T(f"**Last 7 days** ({d.week_window}) against the 7 days before",
                           f"**最近 7 天**（{d.week_window}）与前 7 天对比") + own))
    body += _grid([_week_cell(w) for w in d.week])
    if d.movers:
        body.append(hr())
        body.append(markdown(join([T("**Biggest movers**", "**变化最大的平台**"),
                                   *[_mover_line(m) for m in d.movers]])))
    body.append(hr())
    if d.tags is None:
        body.append(markdown(T("**Top tags**: posts could not be read from GHL this time.",
                               "**热门标签**：这次未能从 GHL 读取帖子。")))
    elif not d.tags:
        body.append(markdown(T("**Top tags**: no tagged posts published in the last 7 days.",
                               "**热门标签**：最近 7 天没有已发布的带标签帖子。")))
    else:
        lines = [T(f"{i}. {esc(clip(t.name, 120))} — {t.posts} post{'s' if t.posts != 1 else ''}",
                   f"{i}. {esc(clip(t.name, 120))} — {t.posts} 篇")
                 for i, t in enumerate(d.tags, start=1)]
        body.append(markdown(join([T("**Top tags** (published posts, last 7 days)",
                                     "**热门标签**（最近 7 天已发布的帖子）"), *lines])))
    # The chart's own title could not be translated (a VChart spec has no i18n): the line above names it.
    if d.trend:
        body.append(markdown(T("Impressions per day: ", "每日曝光：")
                             + T.same(", ".join(f"{day} {fmt_num(v)}" for day, v in d.trend))))
    if len(d.trend) >= 2:
        body.append(chart({"type": "line", "xField": "day", "yField": "value",
                           "data": [{"id": "impressions",
                                     "values": [{"day": day, "value": v} for day, v in d.trend]}]},
                          aspect_ratio="2:1"))
    body.append(markdown(T(f"<font color='grey'>Statistics read {d.taken_at}; GHL's window excludes today.</font>",
                           f"<font color='grey'>统计读取于 {d.taken_at}；GHL 的统计窗口不含今天。</font>")))
    body.append(_buttons(d.location))
    return card(T("Daily digest", "每日摘要"), body, template="turquoise",
                subtitle=T(f"Location {d.location} · {d.local_date} ({d.tz})",
                           f"位置 {d.location} · {d.local_date}（{d.tz}）"),
                summary=T(f"Daily digest {d.local_date}", f"每日摘要 {d.local_date}"))


def digest_empty_card(location: str, local_date: str, tz: str, next_snapshot: str, *, no_accounts: bool) -> Card:
    if no_accounts:
        what = T(f"No connected account of location `{location}` reports statistics yet, so there is nothing to "
                 "summarise. GHL reports Facebook, Instagram, LinkedIn pages, Google Business, Pinterest, YouTube "
                 f"and TikTok business accounts. Once one is connected, numbers appear with the next snapshot "
                 f"(around **{next_snapshot}** {tz}).",
                 f"位置 `{location}` 还没有可提供统计的已连接账户，暂无可汇总的内容。GHL 提供 Facebook、Instagram、"
                 f"LinkedIn 主页、Google 商家、Pinterest、YouTube 和 TikTok 企业账户的统计。连接后，数据会随下一次快照"
                 f"出现（约 **{next_snapshot}** {tz}）。")
    else:
        what = T(f"I have no statistics for location `{location}` yet. I read them every hour; the next reading "
                 f"is due around **{next_snapshot}** ({tz}), and tomorrow's digest will carry the numbers.",
                 f"我还没有位置 `{location}` 的统计数据。我每小时读取一次；下一次约在 **{next_snapshot}**（{tz}），"
                 f"明天的摘要就会包含这些数字。")
    return card(T("Daily digest", "每日摘要"), [markdown(what), _buttons(location)], template="grey",
                subtitle=T(f"Location {location} · {local_date} ({tz})", f"位置 {location} · {local_date}（{tz}）"),
                summary=T(f"Daily digest {local_date}: no data yet", f"每日摘要 {local_date}：暂无数据"))


def digest_no_location_card(choices: int) -> Card:
    if choices == 0:
        todo = T("Connect a GoHighLevel location with `/connect`, then the digest will show its statistics.",
                 "请先用 `/connect` 连接一个 GoHighLevel 位置，摘要就会显示它的统计。")
        action = RunCommand(command="connect")
    else:
        todo = T(f"This chat can use {choices} locations: choose the one the digest should cover with `/location`.",
                 f"这个群可以使用 {choices} 个位置：请用 `/location` 选择摘要要覆盖的那个。")
        action = RunCommand(command="location")
    return card(T("Daily digest", "每日摘要"), [
        markdown(T("The digest has no location to report on.", "摘要没有可汇报的位置。")),
        markdown(todo),
        row(button(T.same(f"/{action.command}"), action, type="primary"),
            button(T("Digest settings", "摘要设置"), RunCommand(command="digest", args="status"))),
    ], template="grey")


def digest_schedule_card(v: ScheduleView) -> Card:
    body: list[Element] = []
    if v.changed is not None:
        body.append(markdown(v.changed))
    if v.enabled and v.hhmm:
        body.append(markdown(T(f"The daily digest is **on**: every day at **{v.hhmm}** ({v.tz}).",
                               f"每日摘要已**开启**：每天 **{v.hhmm}**（{v.tz}）。")))
        if v.next_send:
            body.append(markdown(T(f"Next digest: **{v.next_send}** ({v.tz}). Digests go out 1–4 minutes after "
                                   "the hour you chose, so that not every chat is served at once.",
                                   f"下一次摘要：**{v.next_send}**（{v.tz}）。摘要会在您选择的时间后 1–4 分钟发出，"
                                   "避免所有群同时发送。")))
        buttons = [button(T("Send one now", "立即发送一份"), RunCommand(command="digest", args="now"), type="primary"),
                   button(T("Turn off", "关闭"), RunCommand(command="digest", args="off"), type="danger")]
    else:
        body.append(markdown(T("The daily digest is **off** in this chat.", "这个群的每日摘要已**关闭**。")))
        body.append(markdown(T(f"Turn it on with `{EXAMPLE}` (time and IANA time zone; the zone defaults to "
                               f"{v.tz}).",
                               f"用 `{EXAMPLE}` 开启（时间和 IANA 时区；时区默认为 {v.tz}）。")))
        buttons = [button(T("Send one now", "立即发送一份"), RunCommand(command="digest", args="now"), type="primary")]
    if v.last:
        body.append(markdown(T(f"<font color='grey'>Last digest: {v.last}</font>",
                               f"<font color='grey'>上一次摘要：{v.last}</font>")))
    body.append(row(*buttons))
    return card(T("Daily digest", "每日摘要"), body, template="green" if v.enabled else "grey")


def digest_input_error_card(problem: T) -> Card:
    return card(T("That digest setting did not work", "摘要设置无效"), [
        markdown(problem),
        markdown(T(f"**Usage:** `{USAGE}`\n**Example:** `{EXAMPLE}` (time as HH:MM, 24-hour clock; the zone is an "
                   "IANA name such as `Europe/Berlin` or `America/New_York`).",
                   f"**用法：**`{USAGE}`\n**示例：**`{EXAMPLE}`（时间格式 HH:MM，24 小时制；时区为 IANA 名称，例如 "
                   "`Europe/Berlin` 或 `America/New_York`）。")),
        row(button(T("Show digest status", "查看摘要状态"), RunCommand(command="digest", args="status"))),
    ], template="orange")


def digest_refused_card(reason: T | None = None) -> Card:
    text = T("Sorry, only the group owner, the group's admins and the bot's digest admins can change this "
             "chat's digest. Anyone can use `/digest status` and `/digest now`.",
             "抱歉，只有群主、群管理员和机器人的摘要管理员可以修改这个群的摘要设置。任何人都可以使用 "
             "`/digest status` 和 `/digest now`。")
    elements = [markdown(text)]
    if reason is not None:
        elements.append(markdown(reason))
    elements.append(row(button(T("Show digest status", "查看摘要状态"), RunCommand(command="digest", args="status"))))
    return card(T("Not allowed", "没有权限"), elements, template="orange")

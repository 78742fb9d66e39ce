"""Connect cards: the OAuth authorize link, the confirmation, and the reconnect prompt."""

from __future__ import annotations

from cards.i18n import T
from cards.kit import Card, button, card, clip, code, esc, markdown, row
from cards.payloads import RunCommand


def connect_card(authorize_url: str, *, minutes: int, private: bool) -> Card:
    """`private`: the card goes to one person (a direct chat); otherwise everyone in the chat sees it."""
    who = (T("Keep it to yourself: whoever opens it connects the sub-account they choose.",
             "请勿转发：打开链接的人将连接其所选的子账户。") if private else
           T("Whoever in this chat opens it first connects the sub-account they choose.",
             "本群中最先打开链接的人将连接其所选的子账户。"))
    return card(T("Connect GoHighLevel", "连接 GoHighLevel"), [
        markdown(T("Open the link, sign in to GoHighLevel and choose the sub-account (location) the chat should "
                   f"use. The link works once, for {minutes} minutes. ",
                   "打开链接，登录 GoHighLevel 并选择该聊天要使用的子账户（位置）。"
                   f"链接仅可使用一次，{minutes} 分钟内有效。")
                 + who),
        markdown(T("I ask for read access to Social Planner tags, statistics, accounts and posts, and write access "
                   "to posts (for auto-tagging).",
                   "我会申请社媒排期标签、统计、账户和帖子的读取权限，以及帖子的写入权限（用于自动打标签）。")),
        row(button(T("Connect GHL", "连接 GHL"), url=authorize_url, type="primary")),
    ], template="blue")


def connect_link_sent_card(user_id: str, *, minutes: int) -> Card:
    return card(T("Connect GoHighLevel", "连接 GoHighLevel"), [
        markdown(T(f"<at id={user_id}></at>, I sent you the connect link in our direct chat (valid {minutes} "
                   "minutes). The sub-account you choose there will be connected to this group.",
                   f"<at id={user_id}></at>，我已在单聊中把连接链接发给你（{minutes} 分钟内有效）。"
                   "你在那里选择的子账户将连接到本群。")),
    ], template="blue")


def connect_unavailable_card(*, private_location: str | None) -> Card:
    if private_location:
        text = T(f"This bot is set up with a Private Integration token for location `{private_location}`, "
                 "which every chat already uses. No need to connect.",
                 f"本机器人已通过私有集成令牌连接位置 `{private_location}`，所有群都可直接使用，无需再连接。")
    else:
        text = T("GHL is not configured on this bot yet. An admin sets GHL_CLIENT_ID and GHL_CLIENT_SECRET "
                 "(Marketplace app) or GHL_PRIVATE_TOKEN and GHL_LOCATION_ID (Private Integration).",
                 "本机器人尚未配置 GHL。管理员需设置 GHL_CLIENT_ID 和 GHL_CLIENT_SECRET（应用市场应用），"
                 "或 GHL_PRIVATE_TOKEN 和 GHL_LOCATION_ID（私有集成）。")
    return card(T("Connect GoHighLevel", "连接 GoHighLevel"), [markdown(text),
                row(button(T("Locations", "位置"), RunCommand(command="location")))], template="grey")


def connected_card(location_id: str, name: str | None, user_id: str) -> Card:
    shown = esc(clip(name or location_id, 100))
    return card(T("GoHighLevel connected", "已连接 GoHighLevel"), [
        markdown(T(f"Location **{shown}** ({code(location_id)}) is connected "
                   f"(link requested by <at id={user_id}></at>). Try `/tags` or `/stats`.",
                   f"已连接位置 **{shown}**（{code(location_id)}）（链接由 <at id={user_id}></at> 申请）。"
                   "试试 `/tags` 或 `/stats`。")),
        row(button(T("Tags", "标签"), RunCommand(command="tags"), type="primary"),
            button(T("Statistics", "统计"), RunCommand(command="stats"))),
    ], template="green")


def reconnect_card(location_id: str, reason: T) -> Card:
    return card(T("Reconnect GoHighLevel", "重新连接 GoHighLevel"), [
        markdown(T(f"The connection to location `{location_id}` stopped working: ",
                   f"与位置 `{location_id}` 的连接已失效：") + reason),
        markdown(T("Someone with access to that sub-account should connect it again.",
                   "请有该子账户权限的人重新连接。")),
        row(button(T("Reconnect", "重新连接"), RunCommand(command="connect"), type="primary")),
    ], template="red")

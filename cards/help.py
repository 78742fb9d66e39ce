"""The help card (generated from the command registry), the unknown-command card, the welcome card."""

from __future__ import annotations

from dataclasses import dataclass

from cards.i18n import T
from cards.kit import Card, button, card, hr, markdown, row
from cards.payloads import RunCommand


@dataclass(frozen=True)
class CommandLine:
    name: str
    usage: str
    summary: T


QUICK = ("tags", "stats", "digest", "connect")


def help_card(commands: list[CommandLine], *, welcome: bool = False) -> Card:
    intro = (T("Hi! I bring **GoHighLevel Social Planner** into this chat: tags, statistics, a daily digest "
               "and auto-tagging. Type a command below (in groups, @mention me first).",
               "你好！我把 **GoHighLevel 社媒排期** 带进这个群：标签、统计、每日摘要和自动打标签。"
               "输入下面的命令（群聊中请先 @我）。")
             if welcome else
             T("Commands I understand (in groups, @mention me or start with `/`):",
               "我能理解的命令（群聊中请 @我 或以 `/` 开头）："))
    lines = [T(f"**`{c.usage}`** — {c.summary.en}", f"**`{c.usage}`** — {c.summary.zh}") for c in commands]
    names = {c.name for c in commands}
    quick = [button(T.same(f"/{n}"), RunCommand(command=n), type="primary" if i == 0 else "default")
             for i, n in enumerate(q for q in QUICK if q in names)]
    elements = [markdown(intro), hr(), *[markdown(line) for line in lines]]
    if quick:
        elements.append(row(*quick))
    title = T("Welcome to the Social Planner bot", "欢迎使用社媒排期机器人") if welcome else T("Help", "帮助")
    return card(title, elements, template="blue")


def unknown_command_card(name: str) -> Card:
    return card(T("Unknown command", "未知命令"), [
        markdown(T(f"I don't know `/{name}`. Type `/help` to see what I can do.",
                   f"我不认识 `/{name}`。输入 `/help` 查看我能做什么。")),
        row(button(T("Show help", "查看帮助"), RunCommand(command="help"), type="primary")),
    ], template="orange")


def not_a_command_card() -> Card:
    return card(T("How can I help?", "需要什么帮助？"), [
        markdown(T("Commands start with `/`, for example `/tags` or `/stats`. Type `/help` for the full list.",
                   "命令以 `/` 开头，例如 `/tags` 或 `/stats`。输入 `/help` 查看全部命令。")),
        row(button(T("Show help", "查看帮助"), RunCommand(command="help"), type="primary")),
    ], template="wathet")


def error_card(title: T, what: T, todo: T, *, reference: str | None = None,
               retry: RunCommand | None = None, url: tuple[T, str] | None = None) -> Card:
    """Every failure a user sees: what went wrong, and what to do about it. Never a stack trace."""
    elements = [markdown(what), markdown(T("**What to do:** ", "**怎么办：**") + todo)]
    if reference:
        elements.append(markdown(T(f"Reference: `{reference}`", f"参考编号：`{reference}`")))
    buttons = []
    if retry is not None:
        buttons.append(button(T("Try again", "重试"), retry, type="primary"))
    if url is not None:
        buttons.append(button(url[0], url=url[1], type="primary"))
    if buttons:
        elements.append(row(*buttons))
    return card(title, elements, template="red")


def internal_error_card(reference: str) -> Card:
    return error_card(T("Something went wrong", "出错了"),
                      T("I could not finish that request because of an internal error.",
                        "由于内部错误，我没能完成这个请求。"),
                      T("Try again in a minute. If it keeps happening, tell your admin the reference below.",
                        "请稍后重试。如果一直出错，请把下面的参考编号告诉管理员。"),
                      reference=reference)


STALE_CARD = T("This card is out of date. Run the command again for a fresh one.",
               "这张卡片已过期，请重新运行命令获取新卡片。")
WORKING = T("Working on it…", "正在处理…")
FAILED = T("That did not work. Try again, or run the command again.", "操作失败。请重试，或重新运行命令。")


def not_allowed_card(what: T, reason: T | None = None) -> Card:
    """A polite refusal: only the group owner and admins change this chat's shared settings."""
    elements = [markdown(T("Sorry, only the group owner, the group's admins and the bot's admins can ",
                           "抱歉，只有群主、群管理员和机器人管理员可以") + what + T(".", "。"))]
    if reason is not None:
        elements.append(markdown(reason))
    return card(T("Not allowed", "没有权限"), elements, template="orange")


def needs_a_chat_card(command: str) -> Card:
    return card(T("Run it in a chat", "请在聊天中运行"), [
        markdown(T(f"`{command}` works on one chat: type it in the group or the direct chat it is for.",
                   f"`{command}` 作用于某个聊天：请在对应的群或单聊中输入。")),
    ], template="wathet")

"""Cards for GHL failures: which location, what failed, and what to do. No stack traces, no tokens."""

from __future__ import annotations

from cards.help import error_card
from cards.i18n import T
from cards.kit import Card, clip, esc
from cards.payloads import RunCommand

_WHAT: dict[str, tuple[T, T]] = {
    "auth": (T("GHL rejected the bot's credentials for this location.", "GHL 拒绝了本机器人对该位置的凭证。"),
             T("Reconnect with `/connect`, or ask the admin to rotate the Private Integration token.",
               "用 `/connect` 重新连接，或请管理员更新私有集成令牌。")),
    "needs_reconnect": (T("The GHL connection for this location expired or was revoked.",
                          "该位置的 GHL 连接已过期或被撤销。"),
                        T("Reconnect it with `/connect`.", "请用 `/connect` 重新连接。")),
    "forbidden": (T("The GHL app is missing a permission (scope) for this.", "GHL 应用缺少执行此操作的权限（scope）。"),
                  T("Reconnect with `/connect` and approve every requested permission; on a Private Integration, "
                    "tick the Social Planner scopes.",
                    "用 `/connect` 重新连接并同意所有权限；如使用私有集成，请勾选社媒排期相关权限。")),
    "rate_limited": (T("GHL is rate-limiting this location (100 requests per 10 seconds).",
                       "GHL 正在限制该位置的请求频率（每 10 秒 100 次）。"),
                     T("Wait a minute and try again.", "请等一分钟后重试。")),
    "unavailable": (T("GHL is not answering right now.", "GHL 暂时没有响应。"),
                    T("Try again in a few minutes.", "请几分钟后重试。")),
    "bad_request": (T("GHL refused the request.", "GHL 拒绝了该请求。"),
                    T("Check the command and try again; if it persists, tell your admin the reference.",
                      "请检查命令后重试；如仍失败，请把参考编号告诉管理员。")),
    "not_connected": (T("This location is not connected to the bot.", "该位置尚未连接到本机器人。"),
                      T("Connect it with `/connect`, or pick another one with `/location`.",
                        "用 `/connect` 连接，或用 `/location` 选择其他位置。")),
}


def ghl_error_card(kind: str, location_id: str | None, message: str, *, trace_id: str | None,
                   retry: RunCommand | None = None) -> Card:
    what, todo = _WHAT.get(kind, (T("GHL request failed.", "GHL 请求失败。"), _WHAT["bad_request"][1]))
    where = T(f" (location `{location_id}`)", f"（位置 `{location_id}`）") if location_id else T("", "")
    said = esc(clip(message, 300))
    detail = T(f"\nGHL said: {said}", f"\nGHL 返回：{said}") if message else T("", "")
    return error_card(T("GoHighLevel error", "GoHighLevel 出错"), what + where + detail, todo,
                      reference=trace_id, retry=retry if kind in ("rate_limited", "unavailable") else None)

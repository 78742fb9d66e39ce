"""Issue 6 in a real browser: the sandbox's chat console driven by Playwright on Debian's Chromium.

The sandbox app runs in-process on a free loopback port; Chromium (never downloaded: `/usr/bin/chromium`)
opens `/sandbox`, and every step asserts on the rendered DOM. Screenshots go to `tests/artifacts/`.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.sandbox import demo_data
from bot.sandbox.app import build_sandbox_app
from bot.sandbox.console import SANDBOX

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

playwright_api = pytest.importorskip("playwright.async_api", reason="the `playwright` package is not installed")
if os.environ.get("CI") == "true" and not CHROMIUM.exists():  # CI must run them, not skip them quietly
    raise RuntimeError("CI: /usr/bin/chromium is missing; .ci/run installs it (apt-get install chromium)")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium is missing (apt-get install chromium); never downloaded")

Page = Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def sandbox_url(tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    app = await build_sandbox_app(host="127.0.0.1", port=port, database=tmp_path / "sandbox.db")
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{port}/sandbox"
    finally:
        await server.close()
    assert app[SANDBOX].ghl.invalid_requests == []


@pytest.fixture
async def page(sandbox_url: str) -> AsyncIterator[Page]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1100}, locale="en-US")
            pg = await context.new_page()
            errors: list[str] = []
            pg.on("pageerror", lambda exc: errors.append(str(exc)))
            await pg.goto(sandbox_url)
            await pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
            yield pg
            assert errors == [], errors
        finally:
            await browser.close()


async def shot(page: Page, artifacts: Path, name: str, message: Any = None) -> None:
    """The console as seen, and (with `message`) that whole message, however tall."""
    await page.wait_for_timeout(150)  # let the SVG and fonts settle
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=False)
    if message is not None:  # a tall window, so the whole message fits without scrolling
        size = page.viewport_size
        await page.set_viewport_size({"width": 1280, "height": 2600})
        await message.scroll_into_view_if_needed()
        await message.screenshot(path=str(artifacts / f"{name}-card.png"))
        await page.set_viewport_size(size)


async def say(page: Page, text: str) -> Any:
    """Type a message, send it, and return the locator of the bot card that replies to it."""
    before = await page.locator("[data-testid=message][data-kind=bot]").count()
    await page.fill("[data-testid=composer-input]", text)
    await page.click("[data-testid=send]")
    reply = page.locator("[data-testid=message][data-kind=bot]").nth(before)
    await reply.wait_for(timeout=10_000)
    await reply.locator("[data-testid=card]").wait_for()
    return reply


async def wait_text(locator: Any, pattern: str, timeout: float = 10.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        text = str(await locator.inner_text())
        if re.search(pattern, text):
            return text
        assert asyncio.get_running_loop().time() < deadline, f"{pattern!r} never appeared in:\n{text}"
        await asyncio.sleep(0.1)


async def test_console_tags_stats_digest_and_chinese(page: Page, artifacts: Path) -> None:
    assert "Direct message with the bot" in await page.inner_text("[data-testid=chat-name]")

    # /tags: header, markdown, rows of buttons, the search form
    tags = await say(page, "/tags")
    card = tags.locator("[data-testid=card]")
    assert await card.locator(".lk-title").inner_text() == "Social Planner tags"
    assert await card.locator(".lk-header").get_attribute("data-template") == "turquoise"
    total = len(demo_data.SUNRISE_TAGS)
    await wait_text(card, rf"Showing 1–10 of {total}")
    assert await card.locator(".lk-md b", has_text=str(total)).count() == 1, "bold markdown is rendered as bold"
    assert await card.locator("[data-testid=card-form] [data-testid=card-input]").count() == 1
    assert await card.get_by_role("button", name="Details").count() == 10
    await shot(page, artifacts, "01-tags")

    # Next: a real card.action.trigger; the inline raw card replaces the card in place
    await card.get_by_role("button", name="Next ›").click()
    await page.wait_for_selector(f"[data-testid=message][data-id='{await tags.get_attribute('data-id')}']"
                                 "[data-version='1']")
    tags = page.locator(f"[data-testid=message][data-id='{await tags.get_attribute('data-id')}']")
    card = tags.locator("[data-testid=card]")
    await wait_text(card, rf"Showing 11–20 of {total}")
    assert await card.get_by_role("button", name="‹ Prev").count() == 1
    await shot(page, artifacts, "02-tags-next")

    # a tag's Details: its recent posts, read from GHL
    cold_brew = card.locator(".lk-columns").filter(has=page.locator(".lk-md b", has_text="Cold Brew"))
    assert await cold_brew.count() == 1
    await cold_brew.get_by_role("button", name="Details").click()
    await page.wait_for_selector(f"[data-testid=message][data-id='{await tags.get_attribute('data-id')}']"
                                 "[data-version='2']")
    card = tags.locator("[data-testid=card]")
    assert await card.locator(".lk-title").inner_text() == "Tag details"
    await wait_text(card, r"\d+ posts with this tag in the last 30 days")
    await wait_text(card, r"How to brew the perfect cold brew")
    assert await card.locator(".lk-md li").count() >= 3, "the posts are a markdown list"
    await shot(page, artifacts, "03-tag-details")

    # /stats: coloured changes, and the VChart spec drawn as SVG
    stats = await say(page, "/stats")
    card = stats.locator("[data-testid=card]")
    assert await card.locator(".lk-title").inner_text() == "Social statistics"
    await wait_text(card, r"Impressions")
    chart = card.locator("svg[data-testid=chart]")
    assert await chart.count() == 1 and await chart.get_attribute("data-type") == "line"
    assert await chart.locator("polyline").count() == 1 and await chart.locator("circle").count() == 7
    assert await card.locator(".lk-font[data-color=green], .lk-font[data-color=red]").count() >= 3
    await stats.scroll_into_view_if_needed()
    await shot(page, artifacts, "04-stats", stats)

    # the scheduler's digest, on demand: a new message (not a reply) in this chat
    before = await page.locator("[data-testid=message][data-kind=bot]").count()
    await page.click("[data-testid=trigger-digest]")
    toast = page.locator("[data-testid=toast]")
    await wait_text(toast, r"Digest: sent")
    digest = page.locator("[data-testid=message][data-kind=bot]").nth(before)
    await digest.locator("[data-testid=card]").wait_for(timeout=10_000)
    assert await digest.locator(".lk-title").inner_text() == "Daily digest"
    assert await digest.locator(".quote").count() == 0, "the digest is sent, not a reply"
    assert await digest.locator("svg[data-testid=chart] polyline").count() >= 1, "the 14-day trend from history"
    await digest.scroll_into_view_if_needed()
    await shot(page, artifacts, "05-digest", digest)

    # Chinese: every card re-renders from i18n_content[zh_cn]
    await page.click("[data-testid=lang] button[data-lang=zh_cn]")
    await page.wait_for_function("document.querySelectorAll('[data-testid=card]').length >= 3")
    titles = await page.locator("[data-testid=card] .lk-title").all_inner_texts()
    assert titles == ["标签详情", "社媒统计", "每日摘要"], titles
    stats_zh = page.locator("[data-testid=card]").nth(1)
    await wait_text(stats_zh, r"曝光")
    await wait_text(page.locator("[data-testid=card]").nth(0), r"返回标签列表")
    assert "发送" in await page.inner_text("[data-testid=send]")
    await page.locator("[data-testid=card]").nth(0).scroll_into_view_if_needed()
    await shot(page, artifacts, "06-chinese")


async def test_group_as_owner_with_mention_and_a_published_post(page: Page, artifacts: Path) -> None:
    await page.click(f"[data-testid=chats] li[data-chat='{demo_data.TEAM.chat_id}']")
    assert "Marketing team" in await page.inner_text("[data-testid=chat-name]")
    assert await page.locator("[data-testid=mention]").is_visible()

    # "who am I": a member may not change the group's digest, the owner (Lark chat info) may
    await page.select_option("[data-testid=user]", demo_data.MEMBER.open_id)
    refused = await say(page, "/digest on 08:30 Europe/Berlin")
    assert await refused.locator(".lk-title").inner_text() == "Not allowed"
    assert await refused.locator(".lk-header").get_attribute("data-template") == "orange"
    await page.select_option("[data-testid=user]", demo_data.OWNER.open_id)
    reply = await say(page, "/digest on 08:30 Europe/Berlin")
    user_bubble = page.locator("[data-testid=message][data-kind=user]").last
    assert "@Social Planner Bot" in await user_bubble.inner_text()
    assert "Owen Li" in await user_bubble.inner_text()
    await wait_text(reply.locator("[data-testid=card]"), r"08:30")
    await wait_text(reply.locator("[data-testid=card]"), r"Europe/Berlin")

    before = await page.locator("[data-testid=message][data-kind=bot]").count()
    await page.click("[data-testid=trigger-publish]")
    await wait_text(page.locator("[data-testid=toast]"), r"auto-tag poll handled 1")
    announce = page.locator("[data-testid=message][data-kind=bot]").nth(before)
    await announce.locator("[data-testid=card]").wait_for(timeout=10_000)
    await wait_text(announce, r"written to the post in GHL")
    await announce.scroll_into_view_if_needed()
    await shot(page, artifacts, "07-group-publish", announce)


async def test_a_form_with_an_input_and_a_select_submits_form_value(page: Page, artifacts: Path) -> None:
    rules = await say(page, "/autotag rules")
    card = rules.locator("[data-testid=card]")
    assert await card.locator(".lk-title").inner_text() == "Auto-tag rules"
    await wait_text(card, rf"{len(demo_data.RULES)} rules")
    form = card.locator("[data-testid=card-form][data-name=rule_add]")
    # the client checks required fields before anything is sent, like Lark's
    await form.get_by_role("button", name="Add rule").click()
    await wait_text(page.locator("[data-testid=toast]"), r"required")
    assert await form.locator(".lk-invalid").count() == 2
    assert await rules.get_attribute("data-version") == "0"

    await form.locator("[data-testid=card-input]").fill("espresso")
    select = form.locator("[data-testid=card-select]")
    tag = (await select.locator("option").nth(1).inner_text()).strip()
    await select.select_option(index=1)
    await form.get_by_role("button", name="Add rule").click()
    await page.wait_for_selector(f"[data-testid=message][data-id='{await rules.get_attribute('data-id')}']"
                                 "[data-version='1']")
    card = page.locator(f"[data-testid=message][data-id='{await rules.get_attribute('data-id')}'] "
                        "[data-testid=card]")
    await wait_text(card, rf"{len(demo_data.RULES) + 1} rules")
    await wait_text(card, rf"espresso\s*→\s*{re.escape(tag)}")
    await shot(page, artifacts, "08-autotag-rule-form", rules)

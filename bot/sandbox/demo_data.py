"""The sandbox's demo world: GHL locations with tags, accounts, posts and statistics, the chats and
users of the console, and the bot's own stored state (OAuth installations, chat bindings, two weeks
of statistics history, auto-tagging switches and rules, a digest schedule).

Everything is derived from a fixed seed and "now", so every start shows the same world.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.ghl.models import Statistics
from bot.sandbox.fakes import FakeGhl, FakeLark, build_statistics
from bot.services import Services
from bot.store.autotag import AutotagStore, PollStore
from bot.store.digests import DigestSchedules
from bot.store.installations import Installation
from bot.store.snapshots import SnapshotStore

SEED = 20240607
HISTORY_DAYS = 14
BOT_NAME = "Social Planner Bot"
BOT_OPEN_ID = "ou_sandbox_bot"

# ----- people and chats ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoUser:
    open_id: str
    name: str
    role: str  # "member" or "owner"


@dataclass(frozen=True)
class DemoChat:
    chat_id: str
    name: str
    chat_type: str  # "p2p" or "group"


MEMBER = DemoUser("ou_sandbox_mia", "Mia Chen", "member")
OWNER = DemoUser("ou_sandbox_owen", "Owen Li", "owner")
USERS = (MEMBER, OWNER)
DM = DemoChat("oc_sandbox_dm", "Direct message with the bot", "p2p")
TEAM = DemoChat("oc_sandbox_team", "Marketing team", "group")
CHATS = (DM, TEAM)

# ----- locations ----------------------------------------------------------------------------------

SUNRISE = "loc_sunrise_coffee"  # the Private Integration token's location (available in every chat)
HARBOR = "loc_harbor_fitness"  # OAuth installation, connected in the group
LOTUS = "loc_lotus_tea"  # OAuth installation, connected in both chats
MAPLE = "loc_maple_bakery"  # exists in GHL but not connected: try /connect on it

_CAMPAIGNS = [
    "Summer Sale", "Black Friday", "Cyber Monday", "Holiday Gift Guide", "Back to School", "Spring Launch",
    "Fall Campaign", "New Year Promo", "Valentine's Day", "Mother's Day", "Father's Day", "Earth Day",
    "Halloween", "Thanksgiving", "Lunar New Year", "Mid-Autumn Festival", "National Coffee Day",
    "Anniversary Week", "Grand Opening", "Store Opening", "Flash Sale", "Weekend Deal", "Happy Hour",
    "Limited Edition", "Clearance", "Early Bird", "VIP Preview", "Pre-order",
]
_PRODUCTS = [
    "Seasonal Menu", "Cold Brew", "Pumpkin Spice", "Matcha Latte", "Oat Milk", "Single Origin", "Espresso Bar",
    "Pastry of the Week", "Breakfast Menu", "Merch Drop", "Gift Cards", "Loyalty Program", "Subscription Box",
    "Whole Beans", "Decaf", "Iced Drinks", "Latte Art", "Pour Over", "Nitro Coffee", "Plant-Based",
    "Sugar-Free", "Catering", "Drive-Thru", "Mobile Order", "Reusable Cups", "New Arrival", "Best Seller",
]
_CONTENT = [
    "Behind the Scenes", "Customer Story", "User Generated Content", "Testimonial", "How-To", "Tutorial",
    "Recipe", "Reels", "Carousel", "Live Stream", "Giveaway", "Contest", "Poll", "Q&A", "Meet the Team",
    "Barista Tips", "Product Spotlight", "Announcement", "Event", "Webinar", "Podcast", "Blog Post",
    "Newsletter", "Infographic", "Meme Monday", "Throwback Thursday", "Motivation Monday", "Fun Fact Friday",
    "Community", "Sustainability", "Fair Trade", "Local Partners", "Hiring", "Press", "Awards", "Milestone",
    "Holiday Hours", "Weather Update",
]
_AUDIENCE = [
    "Gen Z", "Millennials", "Students", "Remote Workers", "Families", "B2B", "Corporate Catering", "Wholesale",
    "Awareness", "Consideration", "Conversion", "Retention", "Retargeting", "Lead Magnet", "Brand Awareness",
    "Paid Boost", "Organic", "Influencer", "Partnership", "Collab", "Affiliate", "Evergreen",
]
_CHINESE = [
    "夏季促销", "双十一", "618大促", "黑色星期五", "圣诞节", "春节", "中秋节", "情人节", "七夕", "开学季",
    "新品上市", "限时折扣", "会员日", "会员专享", "积分兑换", "买一送一", "第二杯半价", "门店活动", "新店开业",
    "周年庆", "幕后花絮", "客户故事", "用户晒单", "好评返现", "冲煮教程", "咖啡知识", "拉花艺术", "产地故事",
    "可持续发展", "公平贸易", "本地合作", "招聘", "团队介绍", "直播", "抽奖", "有奖互动", "投票", "问答",
    "节日祝福", "早餐菜单", "下午茶", "冷萃", "燕麦拿铁", "抹茶拿铁", "季节限定", "南瓜拿铁", "生椰拿铁",
    "手冲咖啡", "挂耳咖啡", "咖啡豆", "周边上新", "礼品卡", "企业团购", "外卖", "小红书", "抖音", "微信公众号",
    "视频号", "品牌故事", "品牌曝光", "拉新", "转化", "复购", "私域流量", "KOL合作", "达人探店", "联名款",
    "跨界合作", "城市限定", "周末活动", "读书会", "音乐夜", "亲子活动", "宠物友好", "环保杯", "自带杯优惠",
    "学生优惠", "早鸟价", "预售", "清仓", "热销榜", "店长推荐", "每周甜点", "无糖系列", "植物基", "节气营销",
    "年终盘点", "用户调研",
]
SUNRISE_TAGS = _CAMPAIGNS + _PRODUCTS + _CONTENT + _AUDIENCE + _CHINESE

HARBOR_TAGS = [
    "New Year Resolution", "Summer Shred", "Personal Training", "HIIT", "Yoga", "Pilates", "Spin Class",
    "Strength Training", "Nutrition Tips", "Meal Prep", "Member Spotlight", "Transformation Tuesday",
    "Class Schedule", "Open House", "Referral Program", "Free Trial", "Corporate Wellness", "Recovery",
    "Mobility", "Challenge", "Coach Tips", "Behind the Scenes", "Giveaway", "Announcement", "Holiday Hours",
]
LOTUS_TAGS = [
    "春茶上新", "明前龙井", "白茶", "普洱", "乌龙茶", "茶艺课堂", "茶器", "茶点", "节气茶饮", "中秋礼盒",
    "春节礼盒", "会员日", "品鉴会", "茶山故事", "手作体验", "新品上市", "限时折扣", "直播", "小红书", "抽奖",
    "Tea Ceremony", "Gift Box", "Matcha", "Workshop", "Tasting Event",
]
MAPLE_TAGS = ["Sourdough", "Croissant", "Wedding Cakes", "Custom Orders", "Gluten-Free", "Bake Sale", "Pie Day"]


@dataclass(frozen=True)
class DemoAccount:
    platform: str
    name: str
    type: str
    expired: bool = False


@dataclass(frozen=True)
class DemoPost:
    text: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class DemoLocation:
    location_id: str
    name: str
    via: str  # "private", "oauth" or "none" (exists in GHL, not connected)
    tags: list[str]
    accounts: list[DemoAccount]
    posts: list[DemoPost]
    base: dict[str, int]  # impressions per day per reporting platform
    followers: int


SUNRISE_POSTS = [
    DemoPost("Pumpkin Spice is back! 🎃 Our seasonal menu lands today — first 50 lattes are on us.",
             ("Pumpkin Spice", "Seasonal Menu", "Fall Campaign")),
    DemoPost("Meet Lena, our head barista: 12 years of latte art and a serious pour-over obsession.",
             ("Meet the Team", "Latte Art", "Behind the Scenes")),
    DemoPost("How to brew the perfect cold brew at home in 4 steps ☕️ (save this for later!)",
             ("Cold Brew", "How-To", "Recipe")),
    DemoPost("Giveaway time! Tag a friend who needs a coffee today and win a month of free drinks.",
             ("Giveaway", "Contest", "Community")),
    DemoPost("Our new oat milk matcha latte is 100% plant-based and 100% delicious. 🍵",
             ("Matcha Latte", "Oat Milk", "Plant-Based", "New Arrival")),
    DemoPost("Black Friday early access: 30% off whole beans and subscriptions for loyalty members.",
             ("Black Friday", "Loyalty Program", "Whole Beans", "Early Bird", "Best Seller")),
    DemoPost("Single origin spotlight: Ethiopia Yirgacheffe — jasmine, bergamot, and a bright citrus finish.",
             ("Single Origin", "Product Spotlight")),
    DemoPost("Working from home? Our subscription box ships fresh-roasted beans to your door every two weeks.",
             ("Subscription Box", "Remote Workers", "Whole Beans")),
    DemoPost("Thank you for 10,000 followers! 🎉 Here's a look back at our favourite moments this year.",
             ("Milestone", "Community", "Throwback Thursday")),
    DemoPost("We're hiring baristas for our new downtown store — apply by Friday!",
             ("Hiring", "Store Opening")),
    DemoPost("秋季限定南瓜拿铁回归！🎃 本周会员到店第二杯半价。",
             ("南瓜拿铁", "季节限定", "第二杯半价", "会员日")),
    DemoPost("冲煮教程：三步做出一杯完美的手冲咖啡，收藏起来慢慢学 ☕️",
             ("冲煮教程", "手冲咖啡", "咖啡知识")),
    DemoPost("双十一预售开启：咖啡豆、挂耳咖啡全场早鸟价，限时 48 小时！",
             ("双十一", "预售", "早鸟价", "咖啡豆", "挂耳咖啡")),
    DemoPost("本周末门店音乐夜 🎷 带上朋友一起来，自带杯再减 3 元。",
             ("音乐夜", "周末活动", "自带杯优惠", "门店活动")),
    DemoPost("产地故事｜走进云南保山的咖啡庄园，看一颗咖啡豆的旅程。",
             ("产地故事", "品牌故事", "可持续发展")),
    DemoPost("新品上市：生椰拿铁 × 燕麦拿铁，哪一杯是你的本命？评论区投票！",
             ("新品上市", "生椰拿铁", "燕麦拿铁", "投票")),
    DemoPost("达人探店｜@咖啡日记 带你打卡我们的城市限定款。",
             ("达人探店", "KOL合作", "城市限定")),
    DemoPost("Holiday hours: we close at 4 pm on Dec 24 and reopen Dec 26. Happy holidays! 🎄",
             ("Holiday Hours", "Announcement")),
]
HARBOR_POSTS = [
    DemoPost("Summer Shred starts Monday: 6 weeks of HIIT, nutrition tips and weekly check-ins. 💪",
             ("Summer Shred", "HIIT", "Challenge")),
    DemoPost("Transformation Tuesday: meet Sam, who ran his first 10K after our strength program.",
             ("Transformation Tuesday", "Member Spotlight", "Strength Training")),
    DemoPost("Meal prep Sunday: 5 high-protein lunches under 500 calories.", ("Meal Prep", "Nutrition Tips")),
    DemoPost("Bring a friend for free all week — referral program rewards inside!",
             ("Referral Program", "Free Trial")),
    DemoPost("New class schedule: sunrise yoga and evening spin added.", ("Class Schedule", "Yoga", "Spin Class")),
]
LOTUS_POSTS = [
    DemoPost("明前龙井到店！🍵 春茶上新，本周品鉴会限额 20 位。", ("明前龙井", "春茶上新", "品鉴会")),
    DemoPost("茶艺课堂｜如何用盖碗冲出一泡好乌龙。", ("茶艺课堂", "乌龙茶")),
    DemoPost("中秋礼盒预订开启：白茶 × 手作月饼，企业团购另有优惠。", ("中秋礼盒", "白茶", "茶点")),
    DemoPost("Join our weekend tea ceremony workshop — matcha whisking for beginners.",
             ("Tea Ceremony", "Workshop", "Matcha")),
    DemoPost("茶山故事｜云南古树普洱的采摘季。", ("茶山故事", "普洱")),
]

# Untagged texts "published in GHL now" from the console: the auto-tagging poll suggests tags for them.
PUBLISH_TEXTS = [
    "Our cold brew is back on tap for the summer — grab one with oat milk today! #IcedDrinks",
    "Giveaway this weekend: share your latte art and win a bag of single origin beans.",
    "新品上市：抹茶拿铁今日开售，会员日第二杯半价！",
    "Meet the team behind our new drive-thru — opening next Monday. #GrandOpening",
    "周末活动｜门店读书会 + 手冲咖啡品鉴，欢迎报名。",
    "Pumpkin spice season: the fall campaign starts now with our seasonal menu.",
]

LOCATIONS = [
    DemoLocation(
        SUNRISE, "Sunrise Coffee Co.", "private", SUNRISE_TAGS,
        [DemoAccount("facebook", "Sunrise Coffee Co.", "page"),
         DemoAccount("instagram", "@sunrisecoffee", "business"),
         DemoAccount("linkedin", "Sunrise Coffee Company", "page"),
         DemoAccount("tiktok", "@sunrise.coffee", "business"),
         DemoAccount("google", "Sunrise Coffee – Downtown", "location"),
         DemoAccount("twitter", "@SunriseCoffeeCo", "profile"),
         DemoAccount("facebook", "Sunrise Coffee (old page)", "page", expired=True)],
        SUNRISE_POSTS,
        {"facebook": 1800, "instagram": 2600, "linkedin": 520, "tiktok": 3400, "google": 900},
        18_400,
    ),
    DemoLocation(
        HARBOR, "Harbor Fitness", "oauth", HARBOR_TAGS,
        [DemoAccount("facebook", "Harbor Fitness", "page"),
         DemoAccount("instagram", "@harborfitness", "business"),
         DemoAccount("youtube", "Harbor Fitness TV", "channel")],
        HARBOR_POSTS, {"facebook": 700, "instagram": 1500, "youtube": 800}, 6_200,
    ),
    DemoLocation(
        LOTUS, "莲花茶馆 Lotus Tea House", "oauth", LOTUS_TAGS,
        [DemoAccount("instagram", "@lotusteahouse", "business"),
         DemoAccount("facebook", "Lotus Tea House", "page"),
         DemoAccount("pinterest", "Lotus Tea House", "profile")],
        LOTUS_POSTS, {"instagram": 1100, "facebook": 500, "pinterest": 300}, 4_300,
    ),
    DemoLocation(
        MAPLE, "Maple Street Bakery", "none", MAPLE_TAGS,
        [DemoAccount("instagram", "@maplestreetbakery", "business")], [], {"instagram": 400}, 1_900,
    ),
]

# Keyword rules for auto-tagging (location, keyword, tag name).
RULES = [
    (SUNRISE, "pumpkin", "Fall Campaign"),
    (SUNRISE, "iced", "Iced Drinks"),
    (SUNRISE, "barista", "Meet the Team"),
    (SUNRISE, "读书会", "周末活动"),
]


def location(location_id: str) -> DemoLocation:
    for loc in LOCATIONS:
        if loc.location_id == location_id:
            return loc
    raise KeyError(location_id)


# ----- deterministic statistics -------------------------------------------------------------------


def _noise(*parts: object) -> float:
    """A stable pseudo-random number in [0, 1) for the given parts."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def daily(location_id: str, platform: str, base: int, day: date, today: date) -> dict[str, int]:
    """One platform's figures for one day: weekly rhythm, a slow upward trend, some noise."""
    weekend = day.weekday() >= 5
    rhythm = {"instagram": 1.25, "tiktok": 1.35, "pinterest": 1.2}.get(platform, 0.85) if weekend else 1.0
    trend = 1.0 + 0.012 * (30 - (today - day).days)
    impressions = int(base * rhythm * trend * (0.8 + 0.4 * _noise(location_id, platform, day, "i")))
    posts = int(_noise(location_id, platform, day, "p") * 2.6)
    return {
        "impressions": impressions,
        "reach": int(impressions * (0.62 + 0.1 * _noise(location_id, platform, day, "r"))),
        "likes": int(impressions * (0.03 + 0.02 * _noise(location_id, platform, day, "l"))),
        "comments": int(impressions * (0.003 + 0.004 * _noise(location_id, platform, day, "c"))),
        "shares": int(impressions * 0.002 * (1 + _noise(location_id, platform, day, "s"))),
        "posts": posts,
    }


def _pct(now: float, before: float) -> float:
    return round((now - before) / before * 100, 1) if before else 0.0


def window_statistics(loc: DemoLocation, snapshot_day: date, today: date) -> dict[str, Any]:
    """The statistics `results` GHL would answer on `snapshot_day` (7 days before it, vs the 7 before)."""
    window = [snapshot_day - timedelta(days=n) for n in range(7, 0, -1)]
    previous = [snapshot_day - timedelta(days=n) for n in range(14, 7, -1)]
    platforms = list(loc.base)
    cur = {p: [daily(loc.location_id, p, loc.base[p], d, today) for d in window] for p in platforms}
    old = {p: [daily(loc.location_id, p, loc.base[p], d, today) for d in previous] for p in platforms}

    def total(data: dict[str, list[dict[str, int]]], key: str, p: str | None = None) -> int:
        return sum(day[key] for q in ([p] if p else platforms) for day in data[q])

    followers_growth = int(loc.followers * 0.004 * (30 - (today - snapshot_day).days))
    followers = loc.followers + followers_growth
    stats = build_statistics(
        posts=total(cur, "posts"), likes=total(cur, "likes"), followers=followers,
        impressions=total(cur, "impressions"), comments=total(cur, "comments"), reach=total(cur, "reach"),
        shares=total(cur, "shares"), change=_pct(total(cur, "impressions"), total(old, "impressions")),
        platforms=platforms, day_range=[d.strftime("%a") for d in window],
    )
    # Real per-day series and per-platform changes instead of build_statistics' even split.
    pp = stats["postPerformance"]
    pp["posts"] = {p: [day["posts"] for day in cur[p]] for p in platforms}
    for key in ("impressions", "likes", "comments"):
        pp[key] = [sum(cur[p][i][key] for p in platforms) for i in range(7)]
    b = stats["breakdowns"]
    for key in ("posts", "impressions", "reach"):
        b[key]["totalChange"] = _pct(total(cur, key), total(old, key))
        for p in platforms:
            b[key]["platforms"][p] = {"value": total(cur, key, p), "change": _pct(total(cur, key, p),
                                                                                   total(old, key, p))}
    for p in platforms:
        b["engagement"][p] = {"likes": total(cur, "likes", p), "comments": total(cur, "comments", p),
                              "shares": total(cur, "shares", p),
                              "change": _pct(total(cur, "likes", p), total(old, "likes", p))}
    pt = stats["platformTotals"]
    for key in ("impressions", "likes"):
        for p in platforms:
            pt[key][p] = {"total": total(cur, key, p), "series": [day[key] for day in cur[p]]}
    return stats


# ----- seeding the fakes --------------------------------------------------------------------------


@dataclass
class DemoWorld:
    """What the seeding produced and the console needs later."""

    now: datetime
    tag_ids: dict[str, dict[str, str]] = field(default_factory=dict)  # location -> name -> id
    reporting_accounts: dict[str, list[str]] = field(default_factory=dict)  # location -> account ids
    published: int = 0  # posts published from the console so far


def _object_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(96):024x}"


def seed_ghl(ghl: FakeGhl, now: datetime) -> DemoWorld:
    """Locations, ~200 tags, accounts, two weeks of posts and the current statistics."""
    rng = random.Random(SEED)
    world = DemoWorld(now=now)
    today = now.date()
    for loc in LOCATIONS:
        ghl.add_location(loc.location_id, name=loc.name, company_id="company_sandbox",
                         user_id=f"user_{loc.location_id.removeprefix('loc_')}")
        ids: dict[str, str] = {}
        for name in loc.tags:
            created = now - timedelta(days=rng.randint(20, 400), minutes=rng.randint(0, 1439))
            ids[name] = ghl.add_tag(loc.location_id, name, tag_id=_object_id(rng), created_at=created)["_id"]
        world.tag_ids[loc.location_id] = ids
        accounts = [ghl.add_account(loc.location_id, platform=a.platform, name=a.name, type=a.type,
                                    is_expired=a.expired, profile_id=_object_id(rng)) for a in loc.accounts]
        live = [a for a, demo in zip(accounts, loc.accounts, strict=True) if not demo.expired]
        world.reporting_accounts[loc.location_id] = [a["id"] for a in live if a["platform"] in loc.base]
        for i, post in enumerate(loc.posts * 3):  # each text three times: ~4 posts a day over two weeks
            age = timedelta(days=HISTORY_DAYS * (i + 0.5) / (3 * len(loc.posts)), hours=rng.randint(2, 9))
            account = live[(i + i // len(loc.posts)) % len(live)]  # each repeat on another account
            extra = rng.choice(loc.tags)  # one more tag, so most tags have recent posts to show in Details
            tags = [ids[t] for t in dict.fromkeys([*post.tags, extra]) if t in ids]
            ghl.add_post(loc.location_id, summary=post.text, tags=tags,
                         status="published", published_at=now - age, account_ids=[account["id"]],
                         post_id=_object_id(rng))
        if loc.posts:  # one scheduled and one draft, so lists are not all "published"
            ghl.add_post(loc.location_id, summary=loc.posts[0].text, tags=[ids[t] for t in loc.posts[0].tags],
                         status="scheduled", created_at=now - timedelta(hours=3), account_ids=[live[0]["id"]],
                         post_id=_object_id(rng))
            ghl.add_post(loc.location_id, summary=loc.posts[-1].text, tags=[], status="draft",
                         created_at=now - timedelta(days=1), account_ids=[live[0]["id"]], post_id=_object_id(rng))
        ghl.set_statistics(loc.location_id, window_statistics(loc, today, today))
    return world


def seed_lark(lark: FakeLark) -> None:
    lark.add_chat(TEAM.chat_id, owner_id=OWNER.open_id, name=TEAM.name, chat_mode="group",
                  user_manager_id_list=[])
    lark.add_chat(DM.chat_id, owner_id=MEMBER.open_id, name=DM.name, chat_mode="p2p")


def publish_text(n: int) -> str:
    return PUBLISH_TEXTS[n % len(PUBLISH_TEXTS)]


# ----- seeding the bot's store --------------------------------------------------------------------


async def seed_store(svc: Services, ghl: FakeGhl, world: DemoWorld) -> None:
    """What the bot would have stored by now: installations, chats, history, auto-tagging, a digest."""
    hub = svc.ghl
    assert hub is not None and hub.installations is not None, "the sandbox runs with OAuth enabled"
    now = svc.clock.time()
    for loc in LOCATIONS:
        if loc.via != "oauth":
            continue
        tok = ghl.mint_tokens(loc.location_id)
        await hub.installations.save(Installation(
            location_id=loc.location_id, access_token=tok["access_token"], refresh_token=tok["refresh_token"],
            expires_at=now + float(tok["expires_in"]), company_id=tok["companyId"], user_id=tok["userId"],
            name=loc.name, scope=tok["scope"]))
    for chat in CHATS:
        await svc.chats.seen(chat.chat_id, chat.chat_type, chat.name)
        await svc.chats.bind_location(chat.chat_id, SUNRISE)
    await svc.chats.allow_location(DM.chat_id, LOTUS, MEMBER.open_id)
    await svc.chats.allow_location(TEAM.chat_id, HARBOR, OWNER.open_id)
    await svc.chats.allow_location(TEAM.chat_id, LOTUS, OWNER.open_id)

    snapshots = SnapshotStore(svc.db)
    today = world.now.date()
    for loc in LOCATIONS:
        if loc.via == "none":
            continue
        for back in range(HISTORY_DAYS, -1, -1):
            day = today - timedelta(days=back)
            taken = datetime(day.year, day.month, day.day, 6, 0, tzinfo=UTC).timestamp()
            if back == 0:
                taken = min(taken, now - 60)
            stats = Statistics.model_validate(window_statistics(loc, day, today))
            await snapshots.put(loc.location_id, taken, day.isoformat(), stats.model_dump_json(by_alias=True))

    autotag = AutotagStore(svc.db, svc.clock.time)
    await autotag.update(TEAM.chat_id, enabled=True, writeback=True)
    await autotag.update(DM.chat_id, enabled=True, writeback=False)
    for loc_id, keyword, tag in RULES:
        await autotag.add_rule(loc_id, keyword, world.tag_ids[loc_id][tag], tag, OWNER.open_id)
    polls = PollStore(svc.db, svc.clock.time)
    for loc in LOCATIONS:
        await polls.set_cursor(loc.location_id, now)  # seeded posts are history, not news
    await DigestSchedules(svc.db, svc.clock.time).set(TEAM.chat_id, "09:00", "Asia/Shanghai", OWNER.open_id)

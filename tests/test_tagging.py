"""The tagging engine (bot/tagging.py): pure functions, English and Chinese content."""

from __future__ import annotations

import random

from bot.tagging import (
    KeywordRule,
    TagInfo,
    close_matches,
    compact_key,
    fold,
    key,
    resolve_tag,
    suggest,
    suggest_post,
    text_of_post,
)

TAGS = [
    TagInfo("t_promo", "Promo"),
    TagInfo("t_bf", "Black Friday"),
    TagInfo("t_bfs", "Black Friday Sale"),
    TagInfo("t_sale", "Sale"),
    TagInfo("t_cafe", "Café"),
    TagInfo("t_new", "新品"),
    TagInfo("t_spring", "春季新品"),
    TagInfo("t_launch", "产品发布"),
    TagInfo("t_ai", "AI"),
    TagInfo("t_x", "x"),  # too short to match by name
]


def names(text: str, rules: list[KeywordRule] | None = None) -> list[str]:
    return [s.tag_name for s in suggest(text, TAGS, rules or []).tags]


# ----- normalisation -------------------------------------------------------------------------


def test_key_folds_case_width_diacritics_and_separators() -> None:
    assert key("Café") == key("CAFE") == key("ｃａｆé") == key("cafe\u0301") == "cafe"
    assert key("Black_Friday") == key("black-friday") == key("  BLACK   friday ") == "black friday"
    assert compact_key("#BlackFriday".lstrip("#")) == compact_key("Black Friday") == "blackfriday"
    assert key("Straße") == "strasse"
    assert key("Łódź") == "lodz"
    assert key("がぎ") == "がぎ"  # kana voicing marks are not diacritics to strip
    assert key("ＡＢＣ１２３") == "abc123"


def test_fold_maps_back_to_the_original_characters() -> None:
    folded, origin = fold("Ｃａｆé  x")
    assert folded == "cafe x"
    assert origin == [0, 1, 2, 3, 4, 6]


# ----- names -----------------------------------------------------------------------------------


def test_latin_names_respect_word_boundaries() -> None:
    assert names("Our promo starts today") == ["Promo"]
    assert names("A promotion for everyone") == []  # "promo" inside "promotion"
    assert names("PROMO!") == ["Promo"]
    assert names("(promo)") == ["Promo"]
    assert names("mypromo") == []


def test_names_match_case_width_and_diacritics_insensitively() -> None:
    [s] = suggest("New menu at the ＣＡＦＥ downtown", TAGS).tags
    assert (s.tag_id, s.tag_name) == ("t_cafe", "Café")
    [r] = s.reasons
    assert (r.kind, r.matched) == ("name", "ＣＡＦＥ")  # reported as written
    assert names("cafe") == names("CAFÉ") == names("cafe\u0301") == ["Café"]


def test_chinese_names_match_as_substrings() -> None:
    assert names("春季产品发布会下周举行") == ["产品发布"]
    assert names("今天上线新品啦") == ["新品"]
    assert names("产品") == []


def test_mixed_script_boundaries() -> None:
    assert names("本周AI大会") == ["AI"]  # CJK neighbours are boundaries for a Latin name
    assert names("Visit us for AI tools") == ["AI"]
    assert names("We said hi to MAIL") == []  # "ai" inside "mail"


def test_a_name_inside_a_longer_matching_name_is_dropped() -> None:
    assert names("Black Friday Sale starts now") == ["Black Friday Sale"]
    assert names("black-friday sale!") == ["Black Friday Sale"]
    assert names("Black Friday is coming, and then a sale") == ["Black Friday", "Sale"]
    assert names("春季新品到店") == ["春季新品"]  # 新品 is inside 春季新品


def test_single_character_names_are_ignored() -> None:
    assert names("x marks the spot") == []


def test_urls_do_not_produce_suggestions() -> None:
    assert names("See https://shop.example.com/promo/sale?x=#promo for more") == []


# ----- hashtags --------------------------------------------------------------------------------


def test_hashtags_match_tags_without_spaces_or_case() -> None:
    found = suggest("Deals all week #BlackFriday #black_friday ＃PROMO", TAGS)
    assert [s.tag_name for s in found.tags] == ["Black Friday", "Promo"]
    bf, promo = found.tags
    assert [(r.kind, r.matched) for r in bf.reasons] == [("hashtag", "#BlackFriday")]  # the same tag twice: once
    assert [(r.kind, r.matched) for r in promo.reasons] == [("hashtag", "＃PROMO")]
    assert found.missing == ()


def test_a_hashtag_also_found_as_a_name_is_one_reason() -> None:
    [s] = suggest("#promo", TAGS).tags
    assert [r.kind for r in s.reasons] == ["hashtag"]


def test_unknown_hashtags_are_missing_tags() -> None:
    found = suggest("Launch day! #NewArrivals #promo #新品上架 #2024 C# a#b", TAGS)
    assert [s.tag_name for s in found.tags] == ["Promo", "新品"]  # 新品 inside the hashtag, by name
    assert [m.hashtag for m in found.missing] == ["NewArrivals", "新品上架"]  # no digits-only, no C#, no a#b


def test_chinese_hashtags_with_closing_hash() -> None:
    found = suggest("#春季新品#今天发布 #夏日特惠#", TAGS)
    assert [s.tag_name for s in found.tags] == ["春季新品"]
    assert [(r.kind, r.matched) for r in found.tags[0].reasons] == [("hashtag", "#春季新品")]
    assert [m.hashtag for m in found.missing] == ["夏日特惠"]


def test_missing_hashtags_are_deduplicated_case_insensitively() -> None:
    found = suggest("#Summer and #summer and #SUMMER", TAGS)
    assert [m.hashtag for m in found.missing] == ["Summer"]


# ----- rules -----------------------------------------------------------------------------------


def test_rules_map_keywords_to_tags_with_their_reason() -> None:
    rules = [KeywordRule("discount", "t_sale"), KeywordRule("折扣", "t_promo"), KeywordRule("gone", "t_deleted")]
    found = suggest("Big DISCOUNTS? No: a discount. 全场折扣!", TAGS, rules)
    assert [s.tag_name for s in found.tags] == ["Sale", "Promo"]
    sale, promo = found.tags
    [r] = sale.reasons
    assert (r.kind, r.matched, r.keyword) == ("rule", "discount", "discount")  # "DISCOUNTS" is another word
    assert (promo.reasons[0].kind, promo.reasons[0].keyword) == ("rule", "折扣")


def test_reasons_of_one_tag_are_merged_in_order() -> None:
    rules = [KeywordRule("deal", "t_promo")]
    [s] = suggest("Best deal: promo inside, #promo", TAGS, rules).tags
    assert [(r.kind, r.matched) for r in s.reasons] == [("rule", "deal"), ("name", "promo"), ("hashtag", "#promo")]
    assert s.position == 5


# ----- determinism -----------------------------------------------------------------------------


def test_suggestions_are_ordered_by_first_occurrence_and_stable() -> None:
    text = "Sale at the café, then a promo; 新品 too. #BlackFriday"
    expected = ["Sale", "Café", "Promo", "新品", "Black Friday"]
    assert names(text) == expected
    shuffled = TAGS[:]
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert [s.tag_name for s in suggest(text, shuffled).tags] == expected


def test_duplicate_tag_names_are_both_suggested_in_id_order() -> None:
    tags = [TagInfo("b2", "Promo"), TagInfo("a1", "promo")]
    assert [s.tag_id for s in suggest("promo", tags).tags] == ["a1", "b2"]


# ----- Lark rich text --------------------------------------------------------------------------


POST = {
    "title": "春季新品发布",
    "content": [
        [{"tag": "text", "text": "Our "}, {"tag": "a", "text": "Black Friday", "href": "https://x.test"},
         {"tag": "text", "text": " deals "}, {"tag": "at", "user_id": "@_user_1", "user_name": "Promo Bot"}],
        [{"tag": "img", "image_key": "img_1"}],
        [{"tag": "code_block", "language": "PYTHON", "text": "promo = 1"}],
        [{"tag": "md", "text": "**#NewArrivals** now"}],
    ],
}


def test_text_of_post_joins_text_links_and_markdown_only() -> None:
    assert text_of_post(POST) == "春季新品发布\nOur Black Friday deals\n**#NewArrivals** now"
    wrapped = {"zh_cn": POST}
    assert text_of_post(wrapped) == text_of_post(POST)


def test_suggest_post_reads_rich_text() -> None:
    found = suggest_post(POST, TAGS)
    assert [s.tag_name for s in found.tags] == ["春季新品", "Black Friday"]  # not Promo from the mention or code
    assert [m.hashtag for m in found.missing] == ["NewArrivals"]


# ----- picking tags ----------------------------------------------------------------------------


def test_resolve_tag_by_normalised_name() -> None:
    assert resolve_tag("black_friday", TAGS) == [TagInfo("t_bf", "Black Friday")]
    assert resolve_tag("#PROMO", TAGS) == [TagInfo("t_promo", "Promo")]
    assert resolve_tag("blackfriday", TAGS) == [TagInfo("t_bf", "Black Friday")]
    assert resolve_tag("Promos", TAGS) == []


def test_close_matches_for_the_picker() -> None:
    assert [t.name for t in close_matches("Promos", TAGS)][:1] == ["Promo"]
    assert [t.name for t in close_matches("black friday deals", TAGS)][:2] == ["Black Friday", "Black Friday Sale"]
    assert [t.name for t in close_matches("春季", TAGS)] == ["春季新品"]
    assert close_matches("zzzz", TAGS) == []


def test_work_is_bounded_for_huge_or_repetitive_text() -> None:
    from bot.tagging import MAX_NAME_HITS, MAX_TEXT_CHARS

    tags = [TagInfo("t_sale", "Sale"), TagInfo("t_late", "Latecomer")]
    text = "sale " * (MAX_TEXT_CHARS // 5) + " Latecomer"  # the second name sits past the limit
    found = suggest(text, tags)
    assert [s.tag_id for s in found.tags] == ["t_sale"]
    many = [TagInfo(f"t{i}", f"name{i:04d}") for i in range(1000)]
    found = suggest(" ".join(t.name for t in many), many)
    assert len(found.tags) == MAX_NAME_HITS

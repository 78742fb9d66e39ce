"""Content → tag suggestions among a location's EXISTING tags. Pure functions, no I/O.

Three sources, each suggestion carrying why it was made (`Reason`):

* **name** — a tag's name appears in the text. Matching is case-, width- and
  diacritics-insensitive (`Café` = `cafe` = `ＣＡＦＥ`); `-`, `_` and runs of spaces count as one
  space. Latin-script (and digit) edges need a word boundary (`Promo` does not match
  `promotion`); CJK, kana, Hangul and Thai, written without spaces, match as substrings
  (`新品` in `春季新品上线`). A name contained in a longer matching name is dropped
  (`Sale` inside `Black Friday Sale`). Names shorter than two characters are ignored.
* **hashtag** — `#BlackFriday`, `＃promo`, `#春季新品#`, compared without spaces/`-`/`_`
  (`#black_friday` = tag `Black Friday`). A hashtag that matches no tag is returned in
  `missing`: GHL's API cannot create tags, people create them in the Social Planner.
* **rule** — a per-location keyword → tag id rule; the keyword matches like a name.

URLs are ignored. Results are deterministic: suggestions by first occurrence, then name, then
id; reasons by position; positions index the NFC-normalised text.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "KeywordRule",
    "MissingTag",
    "Reason",
    "Suggestion",
    "Suggestions",
    "TagInfo",
    "close_matches",
    "compact_key",
    "fold",
    "key",
    "resolve_tag",
    "suggest",
    "suggest_post",
    "text_of_post",
]

ReasonKind = Literal["name", "hashtag", "rule"]
MIN_NAME_CHARS = 2
MAX_TEXT_CHARS = 5_000
MAX_OCCURRENCES = 3  # per tag name
MAX_NAME_HITS = 300
MAX_HASHTAGS = 100
MAX_HASHTAG_CHARS = 100
_KIND_ORDER: dict[str, int] = {"hashtag": 0, "name": 1, "rule": 2}

# Combining marks that are diacritics of Latin/Greek/Cyrillic letters. Kana voicing marks
# (U+3099/U+309A) are not in these ranges, so が stays が.
_MARK_RANGES = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F))
# Letters without a Unicode decomposition that people still type without their stroke.
_EXTRA_FOLDS = {"ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d"}
_SEPARATORS = frozenset("_-‐‑‒–—―")
_CONTINUOUS_SCRIPTS = (
    (0x0E00, 0x0E7F),  # Thai
    (0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF),  # Hangul
    (0x3040, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F),  # kana (half-width kana folds to full width)
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F),  # CJK ideographs
)
_HASHTAG = re.compile(r"(?<![\w#＃&/])[#＃](\w{1,100})(?:[#＃](?!\w))?")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)


# ----- data --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagInfo:
    id: str
    name: str


@dataclass(frozen=True)
class KeywordRule:
    keyword: str
    tag_id: str


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    matched: str  # as written in the content (a hashtag with its '#')
    position: int  # index into the NFC-normalised content
    keyword: str | None = None  # the rule's keyword, for kind "rule"


@dataclass(frozen=True)
class Suggestion:
    tag_id: str
    tag_name: str
    reasons: tuple[Reason, ...]

    @property
    def position(self) -> int:
        return self.reasons[0].position


@dataclass(frozen=True)
class MissingTag:
    """A hashtag in the content with no tag of that name in the location."""

    hashtag: str  # as written, without '#'
    position: int


@dataclass(frozen=True)
class Suggestions:
    tags: tuple[Suggestion, ...] = ()
    missing: tuple[MissingTag, ...] = ()

    @property
    def tag_ids(self) -> list[str]:
        return [s.tag_id for s in self.tags]


# ----- normalisation -----------------------------------------------------------------------


def _is_mark(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _MARK_RANGES)


def _is_continuous(ch: str) -> bool:
    """Scripts written without spaces between words: match as substrings."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CONTINUOUS_SCRIPTS)


def _is_word(ch: str) -> bool:
    """A character that glues to its neighbours in Latin-like scripts."""
    return ch.isalnum() and not _is_continuous(ch)


def _fold_char(ch: str) -> str:
    if ch.isspace() or ch in _SEPARATORS:
        return " "
    s = unicodedata.normalize("NFKD", ch)
    s = "".join(c for c in s if not _is_mark(c))
    s = unicodedata.normalize("NFC", s).casefold()
    s = "".join(_EXTRA_FOLDS.get(c, c) for c in s)
    return "".join(" " if (c.isspace() or c in _SEPARATORS) else c for c in s)


def fold(text: str) -> tuple[str, list[int]]:
    """The comparable form of `text` and, per folded character, the index it came from.

    Runs of spaces collapse to one; the mapping lets a match be reported as written.
    """
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        for c in _fold_char(ch):
            if c == " " and (not out or out[-1] == " "):
                continue
            out.append(c)
            origin.append(i)
    return "".join(out), origin


def key(text: str) -> str:
    """Comparable form of a name: folded, single-spaced, trimmed."""
    return fold(unicodedata.normalize("NFC", text))[0].strip()


def compact_key(text: str) -> str:
    """`key` without spaces: `#BlackFriday`, `black_friday` and `Black Friday` agree."""
    return key(text).replace(" ", "")


# ----- matching ----------------------------------------------------------------------------


def _occurrences(folded: str, needle: str) -> Iterable[tuple[int, int]]:
    """(start, end) of every occurrence of `needle` in `folded` that respects word edges."""
    if not needle:
        return
    start_needs_edge = _is_word(needle[0])
    end_needs_edge = _is_word(needle[-1])
    i = folded.find(needle)
    while i >= 0:
        end = i + len(needle)
        ok_start = not start_needs_edge or i == 0 or not _is_word(folded[i - 1])
        ok_end = not end_needs_edge or end == len(folded) or not _is_word(folded[end])
        if ok_start and ok_end:
            yield i, end
        i = folded.find(needle, i + 1)


def _span(origin: list[int], start: int, end: int) -> tuple[int, int]:
    return origin[start], origin[end - 1] + 1


def _overlaps(a: tuple[int, int], spans: Iterable[tuple[int, int]]) -> bool:
    return any(a[0] < e and s < a[1] for s, e in spans)


@dataclass(frozen=True)
class _Hit:
    tag: TagInfo
    reason: Reason
    span: tuple[int, int]


def _hashtags(text: str, urls: list[tuple[int, int]]) -> list[tuple[str, tuple[int, int]]]:
    out: list[tuple[str, tuple[int, int]]] = []
    for m in _HASHTAG.finditer(text):
        body = m.group(1)
        span = (m.start(), m.end())
        if _overlaps(span, urls) or not any(c.isalpha() for c in body) or len(body) > MAX_HASHTAG_CHARS:
            continue
        out.append((body, span))
    return out


def _name_hits(text: str, folded: str, origin: list[int], tags: Sequence[TagInfo],
               skip: list[tuple[int, int]]) -> list[_Hit]:
    hits: list[_Hit] = []
    for tag in tags:
        needle = key(tag.name)
        if len(needle.replace(" ", "")) < MIN_NAME_CHARS:
            continue
        found = 0
        for start, end in _occurrences(folded, needle):
            span = _span(origin, start, end)
            if _overlaps(span, skip):
                continue
            hits.append(_Hit(tag, Reason("name", text[span[0]:span[1]], span[0]), span))
            found += 1
            if found == MAX_OCCURRENCES:  # a few mentions explain a tag; more only cost time below
                break
        if len(hits) >= MAX_NAME_HITS:
            break
    # A name inside a longer matching name (of another tag) is not a separate topic.
    return [h for h in hits
            if not any(o.tag.id != h.tag.id and o.span[0] <= h.span[0] and h.span[1] <= o.span[1]
                       and (o.span[1] - o.span[0]) > (h.span[1] - h.span[0]) for o in hits)]


def _rule_hits(text: str, folded: str, origin: list[int], rules: Sequence[KeywordRule],
               by_id: Mapping[str, TagInfo], skip: list[tuple[int, int]]) -> list[_Hit]:
    hits: list[_Hit] = []
    for rule in rules:
        tag = by_id.get(rule.tag_id)
        if tag is None:  # the rule's tag no longer exists: callers re-validate rules
            continue
        for start, end in _occurrences(folded, key(rule.keyword)):
            span = _span(origin, start, end)
            if _overlaps(span, skip):
                continue
            hits.append(_Hit(tag, Reason("rule", text[span[0]:span[1]], span[0], rule.keyword), span))
            break  # the first occurrence explains the rule
    return hits


def suggest(text: str, tags: Sequence[TagInfo], rules: Sequence[KeywordRule] = ()) -> Suggestions:
    """Tags to suggest for `text`, each with its reasons, and hashtags with no tag behind them.

    Only the first `MAX_TEXT_CHARS` characters are read: the work grows with the matches found, and
    a pasted novel must not hold the event loop.
    """
    text = unicodedata.normalize("NFC", text[:MAX_TEXT_CHARS])
    folded, origin = fold(text)
    urls = [(m.start(), m.end()) for m in _URL.finditer(text)]
    by_id = {t.id: t for t in tags}
    by_compact: dict[str, list[TagInfo]] = {}
    for t in sorted(tags, key=lambda t: (key(t.name), t.id)):
        ck = compact_key(t.name)
        if ck:
            by_compact.setdefault(ck, []).append(t)

    hits: list[_Hit] = []
    missing: dict[str, MissingTag] = {}
    for body, span in _hashtags(text, urls)[:MAX_HASHTAGS]:
        matched = by_compact.get(compact_key(body))
        if matched:
            hits.extend(_Hit(t, Reason("hashtag", text[span[0]:span[1]].rstrip("#＃"), span[0]), span)
                        for t in matched)
        else:
            missing.setdefault(compact_key(body), MissingTag(body, span[0]))
    hashtag_spans = {(h.tag.id, h.span) for h in hits}
    for h in _name_hits(text, folded, origin, tags, urls):
        # The hashtag already says it: "#promo" is one reason, not two.
        if not any(tid == h.tag.id and _overlaps(h.span, [s]) for tid, s in hashtag_spans):
            hits.append(h)
    hits.extend(_rule_hits(text, folded, origin, rules, by_id, urls))
    return Suggestions(_aggregate(hits), tuple(sorted(missing.values(), key=lambda m: (m.position, m.hashtag))))


def _aggregate(hits: list[_Hit]) -> tuple[Suggestion, ...]:
    reasons: dict[str, list[Reason]] = {}
    tags: dict[str, TagInfo] = {}
    for h in hits:
        tags[h.tag.id] = h.tag
        reasons.setdefault(h.tag.id, []).append(h.reason)
    out: list[Suggestion] = []
    for tag_id, rs in reasons.items():
        rs.sort(key=lambda r: (r.position, _KIND_ORDER[r.kind], r.keyword or "", r.matched))
        seen: set[tuple[str, str, str]] = set()
        unique: list[Reason] = []
        for r in rs:
            ident = (r.kind, compact_key(r.matched), r.keyword or "")
            if ident not in seen:
                seen.add(ident)
                unique.append(r)
        out.append(Suggestion(tag_id, tags[tag_id].name, tuple(unique)))
    out.sort(key=lambda s: (s.position, key(s.tag_name), s.tag_id))
    return tuple(out)


# ----- Lark rich text ----------------------------------------------------------------------

_POST_TEXT_NODES = ("text", "a", "md")


def text_of_post(content: Mapping[str, Any]) -> str:
    """Plain text of a Lark `post` (receive form, or wrapped per locale): the title, then one
    line per paragraph of its `text`/`a`/`md` nodes. Mentions, images and code are left out."""
    body = content.get("content")
    if body is None:
        for value in content.values():  # {"zh_cn": {"title": …, "content": […]}}
            if isinstance(value, Mapping) and "content" in value:
                content, body = value, value["content"]
                break
    lines: list[str] = []
    title = content.get("title")
    if isinstance(title, str) and title.strip():
        lines.append(title.strip())
    for paragraph in body if isinstance(body, list) else []:
        parts = [str(node.get("text", "")) for node in (paragraph if isinstance(paragraph, list) else [])
                 if isinstance(node, Mapping) and node.get("tag") in _POST_TEXT_NODES]
        line = "".join(parts).strip()
        if line:
            lines.append(line)
    return "\n".join(lines)


def suggest_post(content: Mapping[str, Any], tags: Sequence[TagInfo],
                 rules: Sequence[KeywordRule] = ()) -> Suggestions:
    return suggest(text_of_post(content), tags, rules)


# ----- picking a tag by name -----------------------------------------------------------------


def resolve_tag(name: str, tags: Sequence[TagInfo]) -> list[TagInfo]:
    """Tags whose name is `name` (normalised; then ignoring spaces/`-`/`_`), sorted by id."""
    k = key(name.lstrip("#＃"))
    exact = [t for t in tags if key(t.name) == k]
    if not exact:
        ck = k.replace(" ", "")
        exact = [t for t in tags if compact_key(t.name) == ck]
    return sorted(exact, key=lambda t: t.id)


def close_matches(name: str, tags: Sequence[TagInfo], limit: int = 10, cutoff: float = 0.6) -> list[TagInfo]:
    """Existing tags that look like `name`: containment first, then similarity; deterministic."""
    ck = compact_key(name.lstrip("#＃"))
    if not ck:
        return []
    scored: list[tuple[float, str, str, TagInfo]] = []
    for t in tags:
        tk = compact_key(t.name)
        if not tk:
            continue
        if tk == ck:
            score = 1.0
        elif ck in tk or tk in ck:
            score = 0.9
        else:
            score = difflib.SequenceMatcher(None, ck, tk).ratio()
        if score >= cutoff:
            scored.append((-score, key(t.name), t.id, t))
    scored.sort(key=lambda x: x[:3])
    return [x[3] for x in scored[:limit]]

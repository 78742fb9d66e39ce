"""Bilingual text: every string a card shows carries English and Chinese."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCALES = ["en_us", "zh_cn"]


@dataclass(frozen=True)
class T:
    """A text in English and Chinese; `T.same(x)` for names and numbers."""

    en: str
    zh: str

    @classmethod
    def same(cls, text: str) -> T:
        return cls(text, text)

    def format(self, **kw: Any) -> T:
        return T(self.en.format(**kw), self.zh.format(**kw))

    def __add__(self, other: T | str) -> T:
        o = other if isinstance(other, T) else T.same(other)
        return T(self.en + o.en, self.zh + o.zh)

    def content(self) -> dict[str, Any]:
        """`content` (English, the fallback) + `i18n_content` (both), as Card JSON 2.0 expects."""
        return {"content": self.en, "i18n_content": {"en_us": self.en, "zh_cn": self.zh}}

    def toast_i18n(self) -> dict[str, str]:
        return {"en_us": self.en, "zh_cn": self.zh}


def join(parts: list[T], sep: str = "\n") -> T:
    return T(sep.join(p.en for p in parts), sep.join(p.zh for p in parts))

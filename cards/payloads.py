"""Typed button values: one pydantic model per action, sent as a small versioned object.

On the wire a value is `{"k": <kind>, "v": <version>, …fields}`. A click whose kind is unknown
or whose version is old is "stale": the user gets a friendly toast instead of an error.
Values never hold secrets; keep them short (they count towards the 30 KB card limit).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: ClassVar[str]
    version: ClassVar[int] = 1

    def to_value(self) -> dict[str, Any]:
        return {"k": self.kind, "v": self.version, **self.model_dump(by_alias=True, exclude_none=True)}


class StalePayload(Exception):
    """The clicked card was built by an older or unknown version of the bot."""


_KINDS: dict[str, type[Payload]] = {}


def register(cls: type[Payload]) -> type[Payload]:
    if cls.kind in _KINDS and _KINDS[cls.kind] is not cls:
        raise ValueError(f"payload kind {cls.kind!r} registered twice")
    _KINDS[cls.kind] = cls
    return cls


def parse_value(value: dict[str, Any]) -> Payload:
    kind, version = value.get("k"), value.get("v")
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None or version != cls.version:
        raise StalePayload(f"unknown or old card action {kind!r} v{version!r}")
    fields = {k: v for k, v in value.items() if k not in ("k", "v")}
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        raise StalePayload(f"malformed card action {kind!r}") from exc


@register
class RunCommand(Payload):
    """A button that runs a text command as if typed (help card, menus, digest shortcuts)."""

    kind: ClassVar[str] = "cmd"
    command: str
    args: str = ""

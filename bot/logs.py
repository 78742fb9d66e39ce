"""Structured (JSON lines) logging that never prints a secret.

Every configured secret value is registered with `SecretFilter`; any occurrence in a message,
its arguments or its extra fields is replaced by `***` before the record is formatted.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from typing import Any

_STD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add(self, *values: str | None) -> None:
        self._secrets.update(v for v in values if v and len(v) >= 6)

    def scrub(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = self.scrub(record.getMessage())
            record.args = None
            for key, value in list(vars(record).items()):
                if key not in _STD and isinstance(value, str):
                    setattr(record, key, self.scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: SecretFilter) -> None:
        super().__init__()
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                               "logger": record.name, "msg": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _STD:
                out[key] = value if isinstance(value, (int, float, bool, type(None))) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = "".join(traceback.format_exception(*record.exc_info))[-4000:]
        # Scrub the finished line too: extras of any type (dicts, lists, objects) are rendered only here.
        return self._secrets.scrub(json.dumps(out, ensure_ascii=False))


SECRETS = SecretFilter()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SECRETS)
    handler.setFormatter(JsonFormatter(SECRETS))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)

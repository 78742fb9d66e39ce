"""The one place the sandbox reaches for the fakes (today in `tests/fakes`).

When the fakes move into a runtime package, change the imports below and nothing else.
"""

from __future__ import annotations

try:
    from tests.fakes.ghl_api import VALIDATES, FakeGhl, build_statistics
    from tests.fakes.lark_api import FakeLark
    from tests.fakes.lark_events import LarkEventFactory
except ImportError as exc:  # a wheel install has no tests/ package
    raise ImportError(
        "the sandbox needs the fakes from the repository checkout (tests/fakes): run `python -m bot` "
        "from the repository root"
    ) from exc

__all__ = ["VALIDATES", "FakeGhl", "FakeLark", "LarkEventFactory", "build_statistics"]

"""Sandbox mode: try the bot without a Lark app or a GHL account (`python -m bot` with no LARK_APP_ID).

`mode` decides and builds the settings (import-light: the real bot imports only this); `app` starts
the fakes and the demo world (`demo_data`) and mounts the chat console (`console`, `static/`). The
fakes come from `fakes`, the one module that knows where they live.
"""

from __future__ import annotations

from bot.sandbox.mode import run_sandbox, sandbox_wanted

__all__ = ["run_sandbox", "sandbox_wanted"]

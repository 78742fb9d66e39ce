"""Auto-tagging, both ways (issue 5).

* `suggest`  — a location's tags and valid rules → the pure engine in `bot.tagging`.
* `posting`  — Lark → GHL: create a post from a chat message, exactly once per message.
* `poll`     — GHL → Lark: `poll_location(services, location_id, now)` for the scheduler: new
  published posts are tagged (when a chat turned write-back on) and announced.
"""

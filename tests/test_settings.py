"""Start-up contract of `python -m bot`: bad settings, `.env`, secrets kept out of logs, graceful shutdown."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.config import Settings, SettingsError, load_settings
from bot.context import Context
from bot.logs import SECRETS, setup_logging
from bot.registry import Router
from bot.server import default_routers
from cards.i18n import T
from cards.kit import Card
from tests.fakes.lark_api import FakeLark
from tests.fakes.lark_events import LarkEventFactory
from tests.harness import APP_ID, APP_SECRET, ENCRYPT_KEY, VERIFICATION_TOKEN, BotHarness

REPO = Path(__file__).resolve().parent.parent
SETTING_PREFIXES = ("LARK_", "GHL_", "PORT", "HOST", "DATABASE_URL", "BOT_", "PUBLIC_BASE_URL", "DEFAULT_TIMEZONE",
                    "DIGEST_", "AUDIT_", "SNAPSHOT_", "STATS_", "TAG_", "LOG_LEVEL")
REQUIRED = {"LARK_APP_ID": APP_ID, "LARK_APP_SECRET": APP_SECRET, "LARK_VERIFICATION_TOKEN": VERIFICATION_TOKEN}
SECRET_VALUES = (APP_SECRET, VERIFICATION_TOKEN, ENCRYPT_KEY)


def clean_env(**values: str) -> dict[str, str]:
    """A minimal environment for `python -m bot`: no inherited bot settings, the repo importable."""
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")}
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(values)
    return env


async def run_bot(cwd: Path, env: dict[str, str], timeout: float = 10.0) -> tuple[int, str, str, float]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=cwd, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - started


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got:\n{stderr}"
    assert "Traceback" not in stderr
    return lines[0]


# -- bad settings stop the start with one line --------------------------------------------------------------


async def test_missing_lark_app_id_exits_with_one_line(tmp_path: Path) -> None:
    env = clean_env(**{k: v for k, v in REQUIRED.items() if k != "LARK_APP_ID"})
    code, out, err, took = await run_bot(tmp_path, env)
    assert code != 0
    assert took < 5.0
    line = one_line(err)
    assert "LARK_APP_ID" in line
    assert out == ""


async def test_non_numeric_port_exits_with_one_line(tmp_path: Path) -> None:
    code, out, err, took = await run_bot(tmp_path, clean_env(**REQUIRED, PORT="abc"))
    assert code != 0
    assert took < 5.0
    line = one_line(err)
    assert "PORT" in line and "LARK_APP_ID" not in line
    assert out == ""
    assert APP_SECRET not in err and VERIFICATION_TOKEN not in err


async def test_env_file_in_the_working_directory_is_read_by_python_m_bot(tmp_path: Path) -> None:
    """Settings come from `.env`: with the required ones there, the error is about the bad PORT only."""
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in REQUIRED.items()) + "PORT=abc\n")
    code, _, err, _ = await run_bot(tmp_path, clean_env())
    assert code != 0
    line = one_line(err)
    assert "PORT" in line and "LARK_APP_ID" not in line


@pytest.fixture
def no_setting_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for key in list(os.environ):
        if key.upper().startswith(SETTING_PREFIXES):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_env_file_values_load_and_the_environment_wins(no_setting_env: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (no_setting_env / ".env").write_text(
        "LARK_APP_ID=cli_from_dotenv\nLARK_APP_SECRET=dotenv-secret\nLARK_VERIFICATION_TOKEN=dotenv-token\n"
        "PORT=9123\nDEFAULT_TIMEZONE=Asia/Shanghai\n", encoding="utf-8")
    s = load_settings()
    assert isinstance(s, Settings)
    assert (s.lark_app_id, s.port, s.default_timezone) == ("cli_from_dotenv", 9123, "Asia/Shanghai")
    assert s.lark_app_secret.get_secret_value() == "dotenv-secret"
    assert "dotenv-secret" not in repr(s)
    monkeypatch.setenv("PORT", "9200")
    assert load_settings().port == 9200


def test_without_env_file_a_missing_variable_is_one_named_error(no_setting_env: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith("LARK_")
    assert "\n" not in str(err.value)


# -- secrets never reach the logs ---------------------------------------------------------------------------


def leaky_router() -> Router:
    router = Router("test_leaky")
    log = logging.getLogger("bot.test.leaky")

    @router.command("leak", T("Fails loudly", "大声失败"), hidden=True)
    async def leak(ctx: Context, args: str) -> Card:
        s = ctx.services.settings
        secret = s.lark_app_secret.get_secret_value()
        token = s.lark_verification_token.get_secret_value()
        key = s.lark_encrypt_key.get_secret_value() if s.lark_encrypt_key else ""
        log.error("calling with secret %s and token %s", secret, token, extra={"key": key, "settings": repr(s)})
        log.warning("settings at failure: %r", s)
        try:
            raise KeyError(f"inner {key}")
        except KeyError as inner:
            raise RuntimeError(f"upstream said: bad app_secret={secret} token={token}") from inner

    return router


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The bot's production logging (JSON lines, secret filter) writing into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buf = io.StringIO()
    setup_logging("DEBUG")
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buf)
    try:
        yield buf
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


async def test_secrets_never_appear_in_logs(tmp_path: Path, json_log: io.StringIO) -> None:
    async with BotHarness.start(tmp_path, routers=[*default_routers(), leaky_router()]) as h:
        # A handler that logs its secrets and raises with them in the exception chain.
        assert (await h.deliver(h.events.message("/leak", chat_id="oc_p2p")))[0] == 200
        await h.settle()
        # A Lark API failure on the reply (logged by the client and by the task tracker).
        h.lark.fail_next("/reply", status=400, code=99991672, times=1)
        assert (await h.deliver(h.events.message("/help", chat_id="oc_p2p")))[0] == 200
        await h.settle()
        # Rejected deliveries carrying a wrong token and a wrong signature.
        bad = h.events.message("/help", chat_id="oc_p2p")
        bad["header"]["token"] = VERIFICATION_TOKEN + "x"
        assert (await h.deliver(bad))[0] == 401
        body, headers = h.events.sign_and_encode(h.events.message("/help", chat_id="oc_p2p"))
        headers["X-Lark-Signature"] = "f" * 64
        assert (await h.post_raw(body, headers))[0] == 401
    output = json_log.getvalue()
    # The flows really logged (the capture works), with the secrets masked.
    assert "handler failed" in output and "calling with secret ***" in output
    assert "lark call failed" in output and "delivery rejected" in output
    assert "upstream said" in output and "***" in output
    for secret in SECRET_VALUES:
        assert secret not in output
    assert {APP_SECRET, VERIFICATION_TOKEN, ENCRYPT_KEY} <= SECRETS._secrets


def test_secrets_in_non_string_log_extras_are_masked(json_log: io.StringIO) -> None:
    SECRETS.add(APP_SECRET, VERIFICATION_TOKEN)
    log = logging.getLogger("bot.test")
    log.error("request failed", extra={"body": {"app_secret": APP_SECRET}, "tokens": [VERIFICATION_TOKEN],
                                       "raw": APP_SECRET.encode()})
    try:
        raise ValueError("outer") from KeyError(VERIFICATION_TOKEN)
    except ValueError as exc:
        log.error("chained", exc_info=exc)
    output = json_log.getvalue()
    assert "request failed" in output and "chained" in output and "***" in output
    assert APP_SECRET not in output and VERIFICATION_TOKEN not in output


# -- graceful shutdown --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_bot(tmp_path: Path, fake: FakeLark) -> tuple[asyncio.subprocess.Process, str, asyncio.Task[bytes]]:
    """`python -m bot` on a free loopback port, its database in tmp_path; returns once /healthz is 200."""
    port = free_port()
    env = clean_env(**REQUIRED, LARK_ENCRYPT_KEY=ENCRYPT_KEY, LARK_DOMAIN=fake.base_url, HOST="127.0.0.1",
                    PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'bot.db'}")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=tmp_path, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stderr_task = asyncio.create_task(proc.stderr.read())  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 15
        while True:
            assert proc.returncode is None, (await stderr_task).decode()
            try:
                async with http.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return proc, base, stderr_task
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, "the bot did not become healthy within 15 s"
            await asyncio.sleep(0.1)


async def test_sigterm_drains_in_flight_work_and_exits_zero(tmp_path: Path) -> None:
    async with FakeLark(APP_ID, APP_SECRET) as fake:
        proc, base, stderr_task = await start_bot(tmp_path, fake)
        try:
            async with aiohttp.ClientSession() as http:
                # A command whose reply is still in flight when SIGTERM arrives.
                fake.latency = 0.4
                events = LarkEventFactory(APP_ID, VERIFICATION_TOKEN, ENCRYPT_KEY)
                env_msg = events.message("/help", chat_id="oc_p2p")
                body, headers = events.sign_and_encode(env_msg)
                async with http.post(f"{base}/lark/events", data=body, headers=headers) as resp:
                    assert resp.status == 200
            assert fake.sent_messages() == []
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            code = await asyncio.wait_for(proc.wait(), 10)
            assert time.monotonic() - started < 10
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        err = (await stderr_task).decode()
        assert code == 0, err
        assert "Traceback" not in err
        assert '"msg": "stopped"' in err
        [reply] = fake.sent_messages()  # the in-flight reply was finished, not dropped
        assert reply["reply_to"] == env_msg["event"]["message"]["message_id"]
        for secret in SECRET_VALUES:
            assert secret not in err


@pytest.mark.parametrize("name", ["lark_verification_token", "lark_app_secret"])
def test_an_empty_token_or_secret_is_refused_at_start(name: str) -> None:
    values = {"lark_app_id": "cli_x", "lark_app_secret": "s3cret", "lark_verification_token": "tok", name: "  "}
    with pytest.raises(SettingsError, match=name.upper()):
        load_settings(**values)


async def test_dedupe_survives_kill_9_and_a_restart(tmp_path: Path) -> None:
    events = LarkEventFactory(APP_ID, VERIFICATION_TOKEN, ENCRYPT_KEY)
    env_msg = events.message("/help", chat_id="oc_p2p")
    async with FakeLark(APP_ID, APP_SECRET) as fake, aiohttp.ClientSession() as http:
        proc, base, _ = await start_bot(tmp_path, fake)
        try:
            body, headers = events.sign_and_encode(env_msg)
            async with http.post(f"{base}/lark/events", data=body, headers=headers) as resp:
                assert resp.status == 200
            await fake.wait_for(lambda f: f.sent_messages(), timeout=10)
        finally:
            proc.kill()  # SIGKILL: no shutdown, no cleanup
            await proc.wait()
        proc, base, _ = await start_bot(tmp_path, fake)
        try:
            body, headers = events.sign_and_encode(env_msg)  # Lark's redelivery of the same event
            async with http.post(f"{base}/lark/events", data=body, headers=headers) as resp:
                assert resp.status == 200
            async with http.get(f"{base}/metrics") as resp:
                metrics = await resp.text()
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 10)
    assert 'lark_events_duplicate_total{type="im.message.receive_v1"} 1.0' in metrics
    assert len(fake.sent_messages()) == 1

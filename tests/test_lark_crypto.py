"""Lark crypto: our functions against the official vector and the lark-oapi SDK as oracle."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from Crypto.Cipher import AES

from bot.lark.crypto import (
    DecryptError,
    lark_decrypt,
    lark_encrypt,
    lark_signature,
    signature_ok,
)
from tests.fakes.lark_events import LarkEventFactory

KEY = "test key"
OFFICIAL_CIPHERTEXT = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="
TOKEN = "v_token_123"
APP_ID = "cli_test"
ALPHABET = 'abcXYZ 019 {}"\\/\n\t' + "中文消息测试你好世界" + "émoji😀🚀" + "\u0000\u00ff"


def _sdk_decrypt(b64: str, key: str) -> str:
    decryptor = importlib.import_module("lark_oapi.core.utils.decryptor")
    plain: str = decryptor.AESCipher(key).decrypt_str(b64)
    return plain


def _raw_seal(padded: bytes, key: str = KEY, iv: bytes = b"\x01" * 16) -> str:
    """AES-CBC without padding: lets a test choose the exact (wrong) padding bytes."""
    cipher = AES.new(hashlib.sha256(key.encode()).digest(), AES.MODE_CBC, iv)
    return base64.b64encode(iv + cipher.encrypt(padded)).decode()


def _flip(b64: str, index: int, mask: int) -> str:
    blob = bytearray(base64.b64decode(b64))
    blob[index] ^= mask
    return base64.b64encode(bytes(blob)).decode()


# ----- decryption --------------------------------------------------------------------


def test_official_vector() -> None:
    assert lark_decrypt(OFFICIAL_CIPHERTEXT, KEY) == "hello world"
    assert _sdk_decrypt(OFFICIAL_CIPHERTEXT, KEY) == "hello world"


def test_random_payloads_agree_with_sdk() -> None:
    rng = random.Random(20240601)
    for i in range(50):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 300)))
        key = f"key-{i}-密钥" if i % 2 else KEY
        sealed = lark_encrypt(text, key)
        assert lark_decrypt(sealed, key) == text
        assert _sdk_decrypt(sealed, key) == text


def test_encrypt_fixed_iv_is_deterministic_and_random_by_default() -> None:
    iv = bytes(range(16))
    assert lark_encrypt("x", KEY, iv) == lark_encrypt("x", KEY, iv)
    assert base64.b64decode(lark_encrypt("x", KEY, iv))[:16] == iv
    assert lark_encrypt("x", KEY) != lark_encrypt("x", KEY)
    with pytest.raises(ValueError, match="16 bytes"):
        lark_encrypt("x", KEY, b"short")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("not base64!!", id="bad-base64-chars"),
        pytest.param(OFFICIAL_CIPHERTEXT[:-2], id="bad-base64-length"),
        pytest.param("", id="empty"),
        pytest.param(base64.b64encode(b"\x00" * 16).decode(), id="iv-only"),
        pytest.param(base64.b64encode(b"\x00" * 40).decode(), id="not-block-multiple"),
        pytest.param(
            base64.b64encode(base64.b64decode(OFFICIAL_CIPHERTEXT)[:-5]).decode(),
            id="truncated-bytes",
        ),
        pytest.param("中文", id="non-ascii"),
    ],
)
def test_malformed_input_raises(bad: str) -> None:
    with pytest.raises(DecryptError):
        lark_decrypt(bad, KEY)


def test_truncated_by_a_block_raises() -> None:
    sealed = lark_encrypt("a" * 40, KEY)  # 3 blocks of ciphertext
    blob = base64.b64decode(sealed)[:-16]  # last remaining block ends in 'a', not padding
    with pytest.raises(DecryptError):
        lark_decrypt(base64.b64encode(blob).decode(), KEY)


@pytest.mark.parametrize(
    "padded",
    [
        pytest.param(b"hello world" + b"\x00" * 5, id="pad-zero"),
        pytest.param(b"hello world" + b"\x11" * 5, id="pad-over-16"),
        pytest.param(b"hello world" + b"\x05\x05\x05\x04\x05", id="pad-inconsistent"),
        pytest.param(b"hello world!!!" + b"\x03\x03", id="pad-longer-than-run"),
    ],
)
def test_bad_padding_raises(padded: bytes) -> None:
    with pytest.raises(DecryptError, match="padding"):
        lark_decrypt(_raw_seal(padded), KEY)


def test_good_raw_padding_decrypts() -> None:
    assert lark_decrypt(_raw_seal(b"hello world" + b"\x05" * 5), KEY) == "hello world"
    assert lark_decrypt(_raw_seal(b"0123456789abcdef" + b"\x10" * 16), KEY) == "0123456789abcdef"


def test_tampered_padding_byte_raises() -> None:
    sealed = lark_encrypt("hello world", KEY)  # one block; pad byte 5 is IV byte 15 ^ …
    with pytest.raises(DecryptError, match="padding"):
        lark_decrypt(_flip(sealed, 15, 0x40), KEY)


def test_tampered_iv_breaking_utf8_raises() -> None:
    sealed = lark_encrypt('{"ascii": "only"}', KEY)
    with pytest.raises(DecryptError, match="UTF-8"):
        lark_decrypt(_flip(sealed, 0, 0x80), KEY)


def test_wrong_key_raises_or_differs() -> None:
    sealed = lark_encrypt("hello world", KEY)
    with contextlib.suppress(DecryptError):
        assert lark_decrypt(sealed, "other key") != "hello world"


def test_decrypt_error_is_value_error() -> None:
    assert issubclass(DecryptError, ValueError)


# ----- signature ---------------------------------------------------------------------


def test_signature_formula() -> None:
    body = b'{"encrypt":"abc"}'
    expected = hashlib.sha256(b"1700000000" + b"nonce" + KEY.encode() + body).hexdigest()
    assert lark_signature("1700000000", "nonce", KEY, body) == expected
    assert expected == expected.lower()
    assert len(expected) == 64


def test_signature_ok_agrees_and_rejects_tampering() -> None:
    body = '{"x": "中文"}'.encode()
    sig = lark_signature("1700000000", "n1", KEY, body)
    assert signature_ok("1700000000", "n1", sig, KEY, body)
    assert not signature_ok("1700000000", "n1", sig, KEY, body + b" ")
    assert not signature_ok("1700000001", "n1", sig, KEY, body)
    assert not signature_ok("1700000000", "n2", sig, KEY, body)
    assert not signature_ok("1700000000", "n1", sig, "other", body)
    assert not signature_ok("1700000000", "n1", sig.upper(), KEY, body)
    assert not signature_ok("1700000000", "n1", "签名", KEY, body)


@pytest.mark.parametrize("missing", ["timestamp", "nonce", "signature"])
@pytest.mark.parametrize("empty", [None, ""])
def test_signature_ok_missing_parts(missing: str, empty: str | None) -> None:
    body = b"{}"
    parts: dict[str, str | None] = {"timestamp": "1", "nonce": "n"}
    parts["signature"] = lark_signature("1", "n", KEY, body)
    parts[missing] = empty
    assert not signature_ok(parts["timestamp"], parts["nonce"], parts["signature"], KEY, body)


# ----- factory output against the SDK dispatcher ---------------------------------------


def _factory(encrypt_key: str | None = KEY) -> LarkEventFactory:
    return LarkEventFactory(APP_ID, TOKEN, encrypt_key)


def _sdk_do(
    body: bytes, headers: dict[str, str], register: Callable[[Any], Any]
) -> tuple[int, bytes]:
    lark = importlib.import_module("lark_oapi")
    handler = register(lark.EventDispatcherHandler.builder(KEY, TOKEN)).build()
    req = lark.RawRequest()
    req.uri = "/lark/events"
    req.body = body
    req.headers = headers
    resp = handler.do(req)
    return resp.status_code, resp.content


def _on_message(seen: list[Any]) -> Callable[[Any], Any]:
    return lambda b: b.register_p2_im_message_receive_v1(seen.append)


def test_signed_request_passes_sdk_dispatcher() -> None:
    factory = _factory()
    envelope = factory.message("/stats", chat_id="oc_1", chat_type="group", mention_bot=True)
    body, headers = factory.sign_and_encode(envelope)
    seen: list[Any] = []
    status, _ = _sdk_do(body, headers, _on_message(seen))
    assert status == 200
    assert len(seen) == 1
    message = seen[0].event.message
    assert message.chat_id == "oc_1"
    assert message.message_id == envelope["event"]["message"]["message_id"]
    assert json.loads(message.content) == {"text": "@_user_1 /stats"}
    assert message.mentions[0].id.open_id == "ou_bot"


def test_flipped_body_byte_fails_sdk_dispatcher() -> None:
    factory = _factory()
    body, headers = factory.sign_and_encode(factory.message("/help", chat_id="oc_1"))
    space = body.index(b" ")  # '{"encrypt": "…"}': space → tab keeps the JSON valid
    tampered = body[:space] + bytes([body[space] ^ 0x29]) + body[space + 1 :]
    assert json.loads(tampered) == json.loads(body)
    seen: list[Any] = []
    status, _ = _sdk_do(tampered, headers, _on_message(seen))
    assert status == 500
    assert seen == []
    ts, nonce = headers["X-Lark-Request-Timestamp"], headers["X-Lark-Request-Nonce"]
    assert signature_ok(ts, nonce, headers["X-Lark-Signature"], KEY, body)
    assert not signature_ok(ts, nonce, headers["X-Lark-Signature"], KEY, tampered)


def test_sign_and_encode_headers_and_body() -> None:
    factory = _factory()
    envelope = factory.bot_added("oc_9", "ou_admin")
    body, headers = factory.sign_and_encode(envelope, timestamp=1_700_000_000, nonce="abc")
    assert headers["X-Lark-Request-Timestamp"] == "1700000000"
    assert headers["X-Lark-Request-Nonce"] == "abc"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Lark-Signature"] == lark_signature("1700000000", "abc", KEY, body)
    assert json.loads(lark_decrypt(json.loads(body)["encrypt"], KEY)) == envelope


def test_without_encrypt_key_plain_and_unsigned() -> None:
    factory = _factory(None)
    envelope = factory.message("/help", chat_id="oc_1")
    body, headers = factory.sign_and_encode(envelope)
    assert json.loads(body) == envelope
    assert not any(h.startswith("X-Lark") for h in headers)


def test_url_verification_encrypted_decrypts_to_challenge() -> None:
    factory = _factory()
    envelope = factory.url_verification("chal-123")
    assert envelope == {"challenge": "chal-123", "token": TOKEN, "type": "url_verification"}
    body, headers = factory.sign_and_encode(envelope)
    plain = json.loads(lark_decrypt(json.loads(body)["encrypt"], KEY))
    assert plain["challenge"] == "chal-123"
    status, content = _sdk_do(body, headers, lambda b: b)
    assert status == 200
    assert json.loads(content) == {"challenge": "chal-123"}


def test_other_envelopes_parse_into_sdk_models() -> None:
    callback = importlib.import_module("lark_oapi.event.callback.model.p2_card_action_trigger")

    factory = _factory()
    got: dict[str, Any] = {}

    def card(event: Any) -> Any:
        got["card"] = event
        return callback.P2CardActionTriggerResponse({})

    def register(b: Any) -> Any:
        return (
            b.register_p2_card_action_trigger(card)
            .register_p2_im_chat_member_bot_added_v1(lambda e: got.setdefault("added", e))
            .register_p2_im_chat_access_event_bot_p2p_chat_entered_v1(
                lambda e: got.setdefault("entered", e)
            )
            .register_p2_application_bot_menu_v6(lambda e: got.setdefault("menu", e))
            .register_p2_im_message_receive_v1(lambda e: got.setdefault("post", e))
        )

    envelopes = [
        factory.card_action({"k": "stats.drill", "v": 1}, chat_id="oc_1", message_id="om_1"),
        factory.bot_added("oc_2", "ou_admin"),
        factory.p2p_entered("oc_3", "ou_u3"),
        factory.menu("stats", "ou_u4"),
        factory.post_message(
            [[{"tag": "text", "text": " /tags"}]], chat_id="oc_5", mention_bot=True
        ),
    ]
    for envelope in envelopes:
        body, headers = factory.sign_and_encode(envelope)
        assert _sdk_do(body, headers, register)[0] == 200
    assert got["card"].event.action.value == {"k": "stats.drill", "v": 1}
    assert got["card"].event.context.open_message_id == "om_1"
    assert got["card"].event.token.startswith("c-")
    assert len(got["card"].header.create_time) >= 16  # microseconds
    assert got["added"].event.chat_id == "oc_2"
    assert got["added"].event.operator_id.open_id == "ou_admin"
    assert got["entered"].event.operator_id.open_id == "ou_u3"
    assert got["menu"].event.event_key == "stats"
    assert got["menu"].event.operator.operator_id.open_id == "ou_u4"
    post = json.loads(got["post"].event.message.content)
    assert post["content"][0][0] == {"tag": "at", "user_id": "@_user_1", "user_name": "Bot"}
    assert post["content"][0][1] == {"tag": "text", "text": " /tags"}

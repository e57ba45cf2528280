"""The wire format against the official and third-party golden vectors in conformance/."""

from __future__ import annotations

import json

import pytest

from bot.simulator.wire import BadReply, build_message, read_reply, signed_request
from bot.wechat.envelope import Envelope, EnvelopeError
from bot.wechat.message import Text
from bot.wechat.reply import render_reply
from bot.wechat.signing import signature
from tests.conftest import DATA

VECTORS = json.loads((DATA / "conformance" / "crypto_vectors.json").read_text("utf-8"))


def test_vector_a_encrypts_exactly() -> None:
    a = VECTORS["A_wxjava_official_java_fixture"]
    envelope = Envelope(a["token"], a["encoding_aes_key"], a["appid"], random16=a["random16"])
    for case in a["cases"]:
        assert envelope.encrypt(case["plaintext"]) == case["ciphertext"]
        assert (
            envelope.open(
                case["ciphertext"],
                signature(a["token"], a["timestamp"], a["nonce"], case["ciphertext"]),
                a["timestamp"],
                a["nonce"],
            )
            == case["plaintext"]
        )
    first = a["cases"][0]["ciphertext"]
    assert (
        signature(a["token"], a["timestamp"], a["nonce"], first) == a["derived_msg_signature_case0"]
    )


def test_vector_b_official_python_sample_compat_mode() -> None:
    b = VECTORS["B_official_python_sample_compat_mode"]
    envelope = Envelope(b["token"], b["encoding_aes_key"], b["appid"])
    encrypt = b["post_body"].split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    assert signature(b["token"], b["timestamp"], b["nonce"], encrypt) == b["msg_signature"]
    assert signature(b["token"], b["timestamp"], b["nonce"]) == b["derived_url_signature"]
    assert (
        envelope.open(encrypt, b["msg_signature"], b["timestamp"], b["nonce"])
        == b["expected_plaintext"]
    )


def test_vector_c_echostr_decrypt_and_encrypt() -> None:
    c = VECTORS["C_wechatpy_wecom_fixture"]
    envelope = Envelope(c["token"], c["encoding_aes_key"], c["appid"])
    echo = c["echostr_check"]
    assert (
        envelope.open(echo["echostr"], echo["signature"], echo["timestamp"], echo["nonce"])
        == (echo["decrypted_echostr_observed"])
    )
    dec = c["decrypt"]
    encrypt = dec["post_body"].split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    assert (
        envelope.open(encrypt, dec["signature"], dec["timestamp"], dec["nonce"])
        == dec["expected_plaintext"]
    )
    enc = c["encrypt"]
    fixed = Envelope(c["token"], c["encoding_aes_key"], c["appid"], random16=enc["random16"])
    assert fixed.seal(enc["reply"], enc["timestamp"], enc["nonce"]) == enc["expected"]


def test_vector_d_easywechat() -> None:
    d = VECTORS["D_easywechat_fixture"]
    envelope = Envelope(d["token"], d["encoding_aes_key"], d["appid"])
    assert (
        envelope.open(d["encrypt"], d["msg_signature"], d["timestamp"], d["nonce"])
        == d["expected_plaintext"]
    )


@pytest.mark.parametrize(
    "case", VECTORS["E_plain_url_signature"]["cases"], ids=lambda c: c["token"]
)
def test_vector_e_url_signatures(case: dict) -> None:
    assert signature(case["token"], case["timestamp"], case["nonce"]) == case["signature"]


def test_vector_f_decrypt_only() -> None:
    f = VECTORS["F_official_access_guide_ciphertext_decrypt_only"]
    envelope = Envelope("anytoken", f["encoding_aes_key"], f["appid"])
    good = signature("anytoken", "1", "2", f["encrypt"])
    assert envelope.open(f["encrypt"], good, "1", "2") == f["expected_plaintext"]


def test_envelope_refuses_foreign_appid_and_bad_signature() -> None:
    a = VECTORS["A_wxjava_official_java_fixture"]
    ours = Envelope(a["token"], a["encoding_aes_key"], a["appid"])
    theirs = Envelope(a["token"], a["encoding_aes_key"], "wx_some_other_app")
    encrypt = theirs.encrypt("<xml/>")
    with pytest.raises(EnvelopeError, match="appid"):
        ours.open(encrypt, signature(a["token"], "1", "2", encrypt), "1", "2")
    with pytest.raises(EnvelopeError, match="signature"):
        ours.open(encrypt, "0" * 40, "1", "2")


@pytest.mark.parametrize("garbage", ["!!!notbase64", "", "QUJD", "A" * 24, "z" * 64])
def test_envelope_refuses_garbage(garbage: str) -> None:
    envelope = Envelope("tok", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1")
    with pytest.raises(EnvelopeError):
        envelope.open(garbage, signature("tok", "1", "2", garbage), "1", "2")


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_signed_request_round_trip(mode: str) -> None:
    key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    xml = build_message("text", "oUser", Content="你好 ]]> <b>")
    signed = signed_request(xml, mode, "tok", key, "wx1", timestamp="100", nonce_value="7")
    assert signed.query["signature"] == signature("tok", "100", "7")
    if mode == "plain":
        assert signed.body.decode() == xml
        return
    body = signed.body.decode()
    encrypt = body.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    assert signed.query["msg_signature"] == signature("tok", "100", "7", encrypt)
    assert (
        Envelope("tok", key, "wx1").open(encrypt, signed.query["msg_signature"], "100", "7") == xml
    )
    assert ("<Content>" in body) == (mode == "compat")


def test_reply_escapes_cdata_end_and_reads_back() -> None:
    xml = render_reply(Text("a ]]> b <x>"), "oUser", "gh_acc", 5)
    reply = read_reply(xml, "oUser")
    assert reply.kind == "text" and reply.text == "a ]]> b <x>"


def test_read_reply_checks_what_wechat_checks() -> None:
    with pytest.raises(BadReply, match="ToUserName"):
        read_reply(render_reply(Text("hi"), "oOther", "gh"), "oUser")
    with pytest.raises(BadReply, match="bytes"):
        read_reply(render_reply(Text("长" * 700), "oUser", "gh"), "oUser")
    with pytest.raises(BadReply, match="safe mode"):
        read_reply(render_reply(Text("hi"), "oUser", "gh"), "oUser", mode="safe")
    with pytest.raises(BadReply):
        read_reply("<xml><ToUserName>", "oUser")
    assert read_reply("success", "oUser").kind == "none"
    assert read_reply("", "oUser").kind == "none"

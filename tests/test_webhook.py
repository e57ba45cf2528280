"""The /wechat endpoint: handshake, modes, answers, and refusals of bad or hostile input."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from bot import clock
from bot.clock import VirtualClock
from bot.simulator.wire import build_message, signed_request
from bot.wechat import message
from bot.wechat.signing import signature
from tests.conftest import WeChat

OPENID = "oAlice000000000000000000000"


def test_handshake_echoes_only_when_signed(wechat: WeChat) -> None:
    ts, nonce = str(int(clock.now())), "12345"
    good = signature(wechat.settings.token, ts, nonce)
    ok = wechat.client.get(
        "/wechat",
        query_string={
            "signature": good,
            "timestamp": ts,
            "nonce": nonce,
            "echostr": "5927782489442352469",
        },
    )
    assert ok.status_code == 200 and ok.get_data(as_text=True) == "5927782489442352469"
    bad = wechat.client.get(
        "/wechat",
        query_string={"signature": "0" * 40, "timestamp": ts, "nonce": nonce, "echostr": "x"},
    )
    assert bad.status_code == 403 and "x" not in bad.get_data(as_text=True)
    assert wechat.client.get("/wechat").status_code == 403


def test_text_weixin_gets_an_excerpt_in_every_mode(any_mode: WeChat) -> None:
    reply = any_mode.ask("微信")
    assert reply.kind == "text"
    assert "微信" in reply.text or "WeChat" in reply.text
    assert len(reply.text) > 20


def test_safe_mode_reply_is_a_signed_envelope(make_app) -> None:
    app = make_app(mode="safe")
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    response = wechat.post(build_message("text", OPENID, Content="微信"))
    body = response.get_data(as_text=True)
    assert "<Encrypt>" in body and "<MsgSignature>" in body and "<Content>" not in body


def test_safe_mode_refuses_plaintext(make_app) -> None:
    app = make_app(mode="safe")
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    response = wechat.post(build_message("text", OPENID, Content="hi"), mode="plain")
    assert response.status_code == 400


def test_healthz_reports_redis_and_content(wechat: WeChat) -> None:
    response = wechat.client.get("/healthz")
    assert response.status_code == 200
    data = response.get_json()
    assert data["ok"] is True and data["redis"]["ok"] is True
    assert data["content"]["articles"] >= 5


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"signature": "0" * 40},
        {"nonce": "other"},
        {"timestamp": "1"},
    ],
    ids=["unsigned", "wrong-signature", "tampered-nonce", "stale-timestamp"],
)
def test_unsigned_or_wrongly_signed_is_403(wechat: WeChat, query: dict, caplog) -> None:
    xml = build_message("text", OPENID, Content="微信")
    signed = signed_request(xml, "plain", wechat.settings.token)
    params = {} if not query else {**signed.query, **query}
    with caplog.at_level(logging.WARNING):
        response = wechat.client.post("/wechat", query_string=params, data=signed.body)
    assert response.status_code == 403
    assert "refused" in caplog.text
    assert wechat.settings.token not in caplog.text


def test_timestamp_window_follows_the_clock(wechat: WeChat) -> None:
    xml = build_message("text", OPENID, Content="微信")
    signed = signed_request(xml, "plain", wechat.settings.token, timestamp="1000000000")
    clock.install(VirtualClock(start=1000000000 + 200, speed=0))
    ok = wechat.client.post("/wechat", query_string=signed.query, data=signed.body)
    assert ok.status_code == 200
    clock.install(VirtualClock(start=1000000000 + 400, speed=0))
    late = wechat.client.post("/wechat", query_string=signed.query, data=signed.body)
    assert late.status_code == 403


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"<xml><ToUserName>", "malformed"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml>&a;</xml>', "DOCTYPE"),
        (b"<xml><FromUserName>o</FromUserName></xml>", "missing field"),
        (
            b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
            b"<MsgType>text</MsgType><MsgType>text</MsgType><Content>x</Content></xml>",
            "MsgType",
        ),
        (
            b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>soon"
            b"</CreateTime><MsgType>text</MsgType><Content>x</Content></xml>",
            "CreateTime",
        ),
        (b"<xml><ToUserName>\xff\xfe</ToUserName></xml>", "UTF-8"),
        (b"<notxml/>", "root"),
    ],
    ids=[
        "empty",
        "malformed",
        "doctype",
        "missing",
        "duplicated",
        "wrong-type",
        "non-utf8",
        "root",
    ],
)
def test_bad_bodies_are_400_with_a_reason(wechat: WeChat, body: bytes, reason: str, caplog) -> None:
    signed = signed_request(
        build_message("text", OPENID, Content="x"), "plain", wechat.settings.token
    )
    with caplog.at_level(logging.WARNING):
        response = wechat.client.post("/wechat", query_string=signed.query, data=body)
    assert response.status_code == 400
    assert reason.lower() in response.get_data(as_text=True).lower()
    assert reason.lower() in caplog.text.lower()


def test_oversized_body_is_413(wechat: WeChat) -> None:
    xml = build_message("text", OPENID, Content="长" * 30000)
    response = wechat.post(xml)
    assert response.status_code == 413


@pytest.mark.parametrize("mode", ["compat", "safe"])
def test_bad_envelopes_are_refused_alike_and_the_log_says_why(make_app, mode: str, caplog) -> None:
    app = make_app(mode=mode)
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    s = wechat.settings
    xml = build_message("text", OPENID, Content="x")
    signed = signed_request(xml, mode, s.token, s.aes_key, s.appid)
    # wrong msg_signature
    bad_sig = wechat.client.post(
        "/wechat", query_string={**signed.query, "msg_signature": "0" * 40}, data=signed.body
    )
    assert bad_sig.status_code == 403
    # bad base64 with a correct signature over it
    garbage = "%%%notbase64%%%"
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[{garbage}]]></Encrypt></xml>"
    query = {
        **signed.query,
        "msg_signature": signature(
            s.token, signed.query["timestamp"], signed.query["nonce"], garbage
        ),
    }
    undecodable = wechat.client.post("/wechat", query_string=query, data=body)
    assert undecodable.status_code == 400
    # a ciphertext made for another appid
    foreign = signed_request(xml, mode, s.token, s.aes_key, "wxSomeOtherApp00")
    with caplog.at_level(logging.WARNING):
        response = wechat.client.post("/wechat", query_string=foreign.query, data=foreign.body)
    assert response.status_code == 400
    # one answer for every failure after the signature: the sender learns nothing from it
    assert response.get_data() == undecodable.get_data() == b"undecryptable Encrypt\n"
    assert "appid" in caplog.text


def test_cdata_end_in_the_question_is_escaped(wechat: WeChat) -> None:
    reply = wechat.ask("]]><evil/> 微信")
    assert reply.kind == "text"


def test_reply_fits_2048_bytes(wechat: WeChat) -> None:
    reply = wechat.ask("微信 公众号 用户 价值 产品 时间 朋友圈 媒体 平台 互联网")
    assert len(reply.text.encode("utf-8")) <= 2048


def test_app_factory_stops_on_bad_config(tmp_path, settings, fake_redis, library) -> None:
    import dataclasses

    from bot.app import create_app
    from bot.config import ConfigError
    from bot.services import build

    (tmp_path / "menu.yaml").write_text("buttons:\n  - name: x\n    type: view\n", "utf-8")
    with pytest.raises(ConfigError, match=r"menu.yaml, line 2"):
        create_app(build(
            dataclasses.replace(settings, config_dir=tmp_path),
            redis_client=fake_redis,
            library=library,
        ))


def test_unknown_route_is_404_not_500(app: Flask) -> None:
    assert app.test_client().get("/nope").status_code == 404
    assert app.test_client().put("/wechat").status_code == 405


def test_a_plaintext_body_is_parsed_once(wechat: WeChat, monkeypatch) -> None:
    signed = signed_request(build_message("text", OPENID, Content="微信"), "plain",
                            wechat.settings.token)
    parses: list[str] = []
    original = message.xmltodict.parse

    def counting(xml, *args, **kwargs):
        parses.append(xml)
        return original(xml, *args, **kwargs)

    monkeypatch.setattr(message.xmltodict, "parse", counting)
    response = wechat.client.post("/wechat", query_string=signed.query, data=signed.body)
    assert response.status_code == 200 and b"<xml>" in response.data
    assert len(parses) == 1


def test_parse_lowercases_types_and_keeps_the_event_key() -> None:
    xml = build_message("event", OPENID, create_time=7, Event=" Subscribe ",
                        EventKey="qrscene_poster42", Ticket="T").replace("[event]", "[EVENT]")
    inbound = message.parse(xml)
    assert (inbound.kind, inbound.event, inbound.event_key) == ("event", "subscribe",
                                                                "qrscene_poster42")
    assert inbound.delivery_id == "e7:subscribe:qrscene_poster42"
    assert message.parse(build_message("Text", OPENID, Content="hi")).kind == "text"


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (build_message("event", OPENID, Event=""), "an event needs Event"),
        (build_message("text", OPENID, Content="a").replace("<Content>", "<Content><b>x</b>", 1),
         "Content must appear once"),
        (build_message("text", OPENID, Content="a", msg_id=1).replace(">1<", ">x<"), "MsgId"),
        ("<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1"
         "</CreateTime><MsgType>text</MsgType></xml>", "needs Content"),
    ],
)
def test_parse_refuses_what_the_platform_would_not_send(xml: str, reason: str) -> None:
    with pytest.raises(message.BadMessage, match=reason):
        message.parse(xml)

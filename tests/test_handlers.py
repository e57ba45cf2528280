"""Every message and event type gets its behaviour, driven through the real webhook."""

from __future__ import annotations

import json

from bot.simulator.wire import build_message
from bot.state import Keys
from tests.conftest import WeChat

OPENID = "oBob00000000000000000000000"


def test_subscribe_welcomes_and_records_the_scene(wechat: WeChat, config, fake_redis) -> None:
    reply = wechat.event("subscribe", OPENID, EventKey="qrscene_poster42", Ticket="T")
    assert reply.kind == "text" and reply.text == config.account.welcome
    assert fake_redis.lrange(Keys.scenes(OPENID), 0, -1) == ["poster42"]


def test_scan_records_the_scene_quietly(wechat: WeChat, fake_redis) -> None:
    assert wechat.event("SCAN", OPENID, EventKey="123", Ticket="T").kind == "none"
    assert fake_redis.lrange(Keys.scenes(OPENID), 0, -1) == ["123"]


def test_unsubscribe_purges_personal_data(wechat: WeChat, fake_redis) -> None:
    wechat.event("subscribe", OPENID, EventKey="qrscene_x", Ticket="T")
    wechat.ask("微信", OPENID)
    assert fake_redis.exists(Keys.session(OPENID))
    assert wechat.event("unsubscribe", OPENID).kind == "none"
    assert not any(fake_redis.exists(key) for key in Keys.personal(OPENID))


def test_keyword_reply_comes_before_search(wechat: WeChat) -> None:
    assert wechat.ask("你好").text == "你好！想了解什么，直接问我吧。"


def test_more_gives_the_next_passage(wechat: WeChat) -> None:
    first = wechat.ask("微信 用户 时间", OPENID)
    second = wechat.ask("更多", OPENID)
    assert second.kind == "text" and second.text != first.text
    assert wechat.ask("more", OPENID).text not in (first.text, second.text)


def test_more_without_a_question_explains(wechat: WeChat) -> None:
    assert "first" in wechat.ask("more", "oNobody0000000000000000000").text


def test_voice_with_recognition_is_a_question(wechat: WeChat) -> None:
    xml = build_message("voice", OPENID, MediaId="m", Format="amr", Recognition="微信")
    reply = wechat.reply(xml, OPENID)
    assert reply.kind == "text" and ("微信" in reply.text or "WeChat" in reply.text)


def test_voice_commands_work_despite_recognition_punctuation(wechat: WeChat, fake_redis) -> None:
    xml = build_message("voice", OPENID, MediaId="m", Format="amr", Recognition="退订。")
    assert wechat.reply(xml, OPENID).text.startswith("已退订推送")
    assert fake_redis.hget(Keys.user(OPENID), "digests") == "off"


def test_voice_without_recognition_asks_for_text(wechat: WeChat) -> None:
    reply = wechat.reply(build_message("voice", OPENID, MediaId="m", Format="amr"), OPENID)
    assert "type" in reply.text


def test_media_location_and_link_get_short_helpful_replies(wechat: WeChat) -> None:
    image = wechat.reply(
        build_message("image", OPENID, PicUrl="http://x/y.jpg", MediaId="m"), OPENID
    )
    assert "文字" in image.text
    place = wechat.reply(
        build_message(
            "location", OPENID, Location_X="31.2", Location_Y="121.4", Scale="15", Label="上海市"
        ),
        OPENID,
    )
    assert "上海市" in place.text and "不会保存" in place.text
    link = wechat.reply(
        build_message("link", OPENID, Title="一篇文章", Description="d", Url="http://x"), OPENID
    )
    assert "《一篇文章》" in link.text


def test_menu_clicks_run_their_configured_action(wechat: WeChat, config) -> None:
    values = wechat.event("CLICK", OPENID, EventKey="VALUES")
    assert values.kind == "text" and len(values.text) > 20
    latest = wechat.event("CLICK", OPENID, EventKey="LATEST")
    assert latest.text.startswith("最新文章")
    about = wechat.event("CLICK", OPENID, EventKey="ABOUT")
    assert about.text == config.menu.click("ABOUT").text
    assert wechat.event("CLICK", OPENID, EventKey="NO_SUCH_KEY").text == config.account.help


def test_receipts_and_passive_events_get_success(wechat: WeChat, fake_redis) -> None:
    for event, fields in [
        ("VIEW", {"EventKey": "http://example.com"}),
        ("LOCATION", {"Latitude": "23.1", "Longitude": "113.3", "Precision": "119"}),
        ("TEMPLATESENDJOBFINISH", {"MsgID": "200163836", "Status": "success"}),
        (
            "MASSSENDJOBFINISH",
            {
                "MsgID": "1988",
                "Status": "sendsuccess",
                "TotalCount": "100",
                "FilterCount": "80",
                "SentCount": "75",
                "ErrorCount": "5",
            },
        ),
        ("some_future_event", {}),
    ]:
        assert wechat.event(event, OPENID, **fields).kind == "none", event
    receipt = json.loads(fake_redis.lindex(Keys.events("masssendjobfinish"), 0))
    assert receipt["SentCount"] == "75"


def test_unknown_message_type_gets_success(wechat: WeChat) -> None:
    assert wechat.reply(build_message("hologram", OPENID, Data="x"), OPENID).kind == "none"


def test_chat_commands_come_first_and_answer_in_kind(wechat: WeChat, fake_redis) -> None:
    stop = wechat.ask("退订", OPENID)
    assert stop.kind == "text" and stop.text.startswith("已退订推送")
    assert fake_redis.hget(Keys.user(OPENID), "digests") == "off"
    assert wechat.ask("TD", OPENID).text.startswith("你已经退订")  # confirmed once only
    start = wechat.ask("start", OPENID)
    assert fake_redis.hget(Keys.user(OPENID), "digests") == "on"
    assert start.text == "Digests are on again."


def test_settings_menu_click_shows_preferences(wechat: WeChat) -> None:
    wechat.event("subscribe", OPENID)
    reply = wechat.event("CLICK", OPENID, EventKey="SETTINGS")
    assert "Asia/Shanghai" in reply.text


def test_activity_opens_the_customer_service_window(wechat: WeChat, fake_redis) -> None:
    wechat.ask("微信", OPENID)
    record = fake_redis.hgetall(Keys.user(OPENID))
    assert record["subscribed"] == "1" and float(record["last_msg"]) > 0


def test_questions_teach_interests_and_forget_me_clears_them(wechat: WeChat, fake_redis) -> None:
    wechat.ask("微信公众平台的价值观是什么", OPENID)
    assert fake_redis.zcard(Keys.push_interests(OPENID)) > 0
    wechat.ask("忘记我", OPENID)
    assert fake_redis.zcard(Keys.push_interests(OPENID)) == 0


def test_long_text_is_cut_at_a_sentence_and_more_gives_the_rest(make_app, config) -> None:
    from bot.config import KeywordReply, Replies

    long_text = "".join(f"第{i}句话讲的是微信的价值观。" for i in range(200))
    replies = Replies(replies=(KeywordReply(match="exact", pattern="长文", reply=long_text),))
    app = make_app(config_override=config.__class__(**{**config.__dict__, "replies": replies}))
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    first = wechat.ask("长文", OPENID)
    assert len(first.text.encode()) <= 2048
    head = first.text.split("\n……")[0]
    assert head.endswith("。") and long_text.startswith(head)
    rest = wechat.ask("更多", OPENID).text.split("\n……")[0]
    assert long_text.startswith(head + rest) and len(rest) > 100

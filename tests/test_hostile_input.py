"""What an attacker, or a subscriber typing as people type, sends the webhook: each finding of the
hostile-load review as a test (slow clients are tests/test_serving.py's; long questions' load is
bench/long_questions.py's)."""

from __future__ import annotations

import logging
import socket

import pytest
from rq import SimpleWorker

from bot import services, worker
from bot.app import create_app
from bot.inbound import handlers
from bot.services import build
from bot.simulator.server import BackgroundServer
from bot.simulator.wire import build_message, read_reply, signed_request
from bot.state import Keys
from bot.wechat.signing import signature
from tests.conftest import WeChat

OPENID = "oHostile00000000000000000000"


def signed_query(wechat: WeChat, timestamp: str, nonce: str = "4242") -> dict[str, str]:
    return {
        "signature": signature(wechat.settings.token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
    }


# --- 2. long questions ---------------------------------------------------------------------------


def test_a_long_question_is_read_up_to_its_limit(wechat: WeChat, fake_redis, library) -> None:
    limit = 300
    question = "微信的价值观是什么" + "啊" * 20000
    assert library.clip(question) == question[:limit]
    reply = wechat.ask(question, OPENID)
    assert reply.kind == "text"
    stored = fake_redis.hget(Keys.session(OPENID), "question")
    assert stored is None or len(stored) <= limit  # the "more" session keeps what was read


def test_a_long_question_does_not_start_the_slow_model(library, monkeypatch) -> None:
    started: list[str] = []
    other = library._setup.same_language
    if other is None:
        pytest.skip("config/search.yaml runs no same_language model")
    original = other.search
    monkeypatch.setattr(
        other, "search", lambda q, *a, **k: started.append(q) or original(q, *a, **k)
    )
    library.answer("微信" * 100 + "一")  # longer than same_language_max_chars
    assert started == []
    library.answer("微信的价值观")
    assert started == ["微信的价值观"]


# --- 3. a captured signed URL replayed with another body -----------------------------------------


@pytest.mark.parametrize("mode", ["plain", "compat"])
def test_a_signed_url_carries_one_body(make_app, mode: str) -> None:
    app = make_app(mode=mode)
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    first = build_message("text", OPENID, Content="微信")
    signed = signed_request(first, "plain", wechat.settings.token)  # plaintext, as WeChat may
    first_post = wechat.client.post("/wechat", query_string=signed.query, data=signed.body)
    assert first_post.status_code == 200
    # WeChat's retry: the same URL, the same body: answered (from the dedup cache)
    retry = wechat.client.post("/wechat", query_string=signed.query, data=signed.body)
    assert retry.status_code == 200
    # the same URL with another body (any openid, 退订): refused
    forged = build_message("text", "oVictim0000000000000000000000", Content="退订")
    replay = wechat.client.post("/wechat", query_string=signed.query, data=forged.encode())
    assert replay.status_code == 403 and "replay" in replay.get_data(as_text=True)


def test_encrypted_bodies_need_no_guard(make_app) -> None:
    app = make_app(mode="safe")
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    assert wechat.ask("微信", OPENID).kind == "text"


# --- 4. "stop" written the way people write it ---------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["退订", "退订。", "退订！", "ＴＤ", "td", "退 订", "退订\u200b", "\u200b退\u200d订\ufeff",
     "stop", "stop!", "Ｓｔｏｐ", "STOP.", " Stop ", "「退订」", "unsubscribe."],
)
def test_stop_written_any_way_stops_the_digests(wechat: WeChat, fake_redis, text: str) -> None:
    wechat.event("subscribe", OPENID)
    reply = wechat.ask(text, OPENID)
    assert fake_redis.hget(Keys.user(OPENID), "digests") == "off", reply.text
    assert "订阅" in reply.text or "start" in reply.text


@pytest.mark.parametrize("text", ["我想退订一下你们的邮件是什么意思", "stop the war", "退订退订"])
def test_sentences_that_contain_stop_are_questions(wechat: WeChat, fake_redis, text) -> None:
    wechat.event("subscribe", OPENID)
    wechat.ask(text, OPENID)
    assert fake_redis.hget(Keys.user(OPENID), "digests") == "on"


# --- 5. chat commands with odd arguments ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["时区 Asia", "时区 " + "A" * 300, "timezone Etc", "timezone ../../etc/passwd",
     "时区 /usr/share/zoneinfo/UTC", "频率 ²", "频率 " + "9" * 5000, "frequency ١٢",
     "免打扰 ²²-8", "quiet 99999999999999999999-1"],
)
def test_odd_command_arguments_get_a_usage_hint_not_an_apology(
    wechat: WeChat, text: str, caplog
) -> None:
    with caplog.at_level(logging.ERROR):
        reply = wechat.ask(text, OPENID)
    assert reply.kind == "text"
    assert "出了点问题" not in reply.text and "Traceback" not in caplog.text
    assert len(reply.text) < 400  # a hint, not the argument echoed whole


def test_a_real_zone_is_still_taken(wechat: WeChat, fake_redis) -> None:
    wechat.ask("时区 Europe/London", OPENID)
    assert fake_redis.hget(Keys.user(OPENID), "tz") == "Europe/London"


# --- 6. numbers that str.isdigit() takes and int() does not ---------------------------------------


@pytest.mark.parametrize("create_time", ["²", "1" * 4400, "１２３", "٣"])
def test_odd_create_time_is_400(wechat: WeChat, create_time: str) -> None:
    xml = (f"<xml><ToUserName>gh_1</ToUserName><FromUserName>{OPENID}</FromUserName>"
           f"<CreateTime>{create_time}</CreateTime><MsgType>text</MsgType>"
           "<Content>hi</Content><MsgId>1</MsgId></xml>")
    response = wechat.post(xml)
    assert response.status_code == 400 and "CreateTime" in response.get_data(as_text=True)


@pytest.mark.parametrize("timestamp", ["²", "1" * 4400, "١٢٣"])
def test_odd_query_timestamp_is_403(wechat: WeChat, timestamp: str) -> None:
    body = build_message("text", OPENID, Content="hi").encode()
    response = wechat.client.post("/wechat", query_string=signed_query(wechat, timestamp),
                                  data=body)
    assert response.status_code in (400, 403)


# --- 7. ids that would break the reply -----------------------------------------------------------


@pytest.mark.parametrize(
    "sender",
    ["o]]></ToUserName><Content>INJECTED</Content><x>", "o<a>", "o b", "o" * 65, "o\u00e9", "o/1"],
)
def test_ids_not_shaped_like_the_platforms_are_400(wechat: WeChat, sender: str) -> None:
    response = wechat.post(build_message("text", sender, Content="微信"))
    assert response.status_code == 400
    assert "INJECTED" not in response.get_data(as_text=True)


def test_an_account_id_not_shaped_like_the_platforms_is_400(wechat: WeChat) -> None:
    xml = build_message("text", OPENID, account="gh_]]><x>", Content="微信")
    assert wechat.post(xml).status_code == 400


# --- 8. a chunked body over the limit ------------------------------------------------------------


def raw_post(url: str, head: str, body: bytes) -> tuple[int, bytes]:
    """Send a raw request; the status and the response's body (by its Content-Length)."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
        top, _, rest = answer.partition(b"\r\n\r\n")
        length = 0
        for line in top.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += sock.recv(65536)
    return int(top.split(b" ", 2)[1]), rest


def chunked(data: bytes, size: int = 4096) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


@pytest.fixture
def served(settings, config, fake_redis, library):
    app = create_app(build(settings, config=config, redis_client=fake_redis, library=library))
    with BackgroundServer(app) as server:
        yield server.url, settings


def test_a_chunked_body_over_the_limit_is_413(served) -> None:
    url, settings = served
    body = build_message("text", OPENID, Content="微" * 30000).encode()  # ~90 KB
    signed = signed_request(body.decode(), "plain", settings.token)
    query = "&".join(f"{k}={v}" for k, v in signed.query.items())
    head = (f"POST /wechat?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: text/xml\r\n\r\n")
    status, _ = raw_post(url, head, chunked(body))
    assert status == 413


def test_a_chunked_body_within_the_limit_is_answered(served) -> None:
    url, settings = served
    xml = build_message("text", OPENID, Content="微信")
    signed = signed_request(xml, "plain", settings.token)
    query = "&".join(f"{k}={v}" for k, v in signed.query.items())
    head = (f"POST /wechat?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\nContent-Type: text/xml\r\n\r\n")
    status, answer = raw_post(url, head, chunked(xml.encode(), 64))
    assert status == 200
    assert read_reply(answer, OPENID).kind == "text"


# --- 9. UTF-16 and other encodings ---------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le", "utf-16", "utf-32"])
def test_bodies_in_other_encodings_are_400(wechat: WeChat, encoding: str) -> None:
    xml = '<!DOCTYPE x [<!ENTITY e "E">]>' + build_message("text", OPENID, Content="&e;")
    signed = signed_request(build_message("text", OPENID, Content="x"), "plain",
                            wechat.settings.token)
    response = wechat.client.post("/wechat", query_string=signed.query,
                                  data=xml.encode(encoding))
    assert response.status_code == 400


# --- 11. forget me -------------------------------------------------------------------------------


def test_forget_me_forgets_all_but_the_opt_out(wechat: WeChat, fake_redis, monkeypatch) -> None:
    wechat.event("subscribe", OPENID, EventKey="qrscene_poster1")
    wechat.event("SCAN", OPENID, EventKey="poster2")
    wechat.ask("时区 Europe/London", OPENID)
    wechat.ask("免打扰 23-7", OPENID)
    wechat.ask("微信公众平台的价值观是什么", OPENID)
    wechat.ask("退订", OPENID)
    assert fake_redis.exists(Keys.scenes(OPENID)) and fake_redis.exists(Keys.session(OPENID))
    cached = [k for k in fake_redis.scan_iter(f"bot:seen:{OPENID}:*")]
    assert cached
    wechat.ask("忘记我", OPENID)
    assert fake_redis.hgetall(Keys.user(OPENID)) == {"subscribed": "1", "digests": "off"}
    for key in (Keys.scenes(OPENID), Keys.session(OPENID), Keys.push_interests(OPENID),
                Keys.push_pending(OPENID)):
        assert not fake_redis.exists(key), key
    assert not any(fake_redis.hexists(k, OPENID) for k in Keys.personal_fields())
    assert fake_redis.zscore(Keys.push_members(), OPENID) is not None  # still following
    # the cached answers go in a job (scanning the keyspace is not for the webhook's deadline)
    monkeypatch.setattr(services, "current", lambda: wechat.client.application.extensions[
        "bot.services"])
    queue = worker.queue(fake_redis)
    SimpleWorker([queue], connection=queue.connection, serializer=queue.serializer).work(
        burst=True
    )
    left = set(fake_redis.scan_iter(f"bot:seen:{OPENID}:*"))
    assert not left & set(cached)


def test_forget_me_keeps_digests_on_as_the_default(wechat: WeChat, fake_redis) -> None:
    wechat.event("subscribe", OPENID)
    wechat.ask("forget me", OPENID)
    assert fake_redis.hgetall(Keys.user(OPENID)) == {"subscribed": "1"}


# --- 12. QR scenes -------------------------------------------------------------------------------


def test_the_qr_scene_list_keeps_the_latest(wechat: WeChat, fake_redis) -> None:
    wechat.event("subscribe", OPENID, EventKey="qrscene_first")
    for n in range(60):
        wechat.event("SCAN", OPENID, EventKey=f"poster{n}")
    scenes = fake_redis.lrange(Keys.scenes(OPENID), 0, -1)
    assert len(scenes) == handlers.SCENES_KEPT
    assert scenes[-1] == "poster59"


def test_a_long_scene_value_is_cut(wechat: WeChat, fake_redis) -> None:
    wechat.event("SCAN", OPENID, EventKey="p" * 5000)
    assert len(fake_redis.lindex(Keys.scenes(OPENID), -1)) == handlers.SCENE_MAX_CHARS

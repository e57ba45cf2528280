"""The protocol driver: signed deliveries in each mode, re-delivery, the client's failure notice."""

from __future__ import annotations

import dataclasses
import time

import pytest
import xmltodict
from flask import Flask, request

from bot import clock
from bot.simulator.actions import parse_action
from bot.simulator.api import PLATFORM_SENDER, create_api
from bot.simulator.driver import FAILURE_NOTICE, Driver, openid_for
from bot.simulator.server import BackgroundServer
from bot.wechat.envelope import Envelope
from bot.wechat.message import Text
from bot.wechat.reply import render_reply


class Peer:
    """A webhook that follows a script (slow, HTTP 500, a reply to the wrong user, ok)."""

    def __init__(self, script: list[str], pause: float = 0.6) -> None:
        self.script, self.pause = list(script), pause
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.app = Flask(__name__)
        self.app.add_url_rule("/wechat", "wechat", self.receive, methods=["POST"])
        self.app.add_url_rule("/wechat", "hello", lambda: "hello", methods=["GET"])

    def receive(self) -> tuple[str, int]:
        self.seen.append((dict(request.args), request.get_data()))
        step = self.script.pop(0) if self.script else "ok"
        openid = request.args.get("openid", "")
        if step == "slow":
            time.sleep(self.pause)
        if step == "500":
            return "busy", 500
        if step == "misaddressed":
            return render_reply(Text("hi"), "oSomeoneElse", "gh_simulated0001"), 200
        return render_reply(Text(f"ok {len(self.seen)}"), openid, "gh_simulated0001"), 200


@pytest.fixture
def serve():
    servers: list[BackgroundServer] = []

    def start(app: Flask) -> str:
        servers.append(BackgroundServer(app).start())
        return servers[-1].url + "/wechat"

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_the_real_webhook_answers_in_every_mode(make_app, settings, serve, mode):
    url = serve(make_app(mode=mode))
    reported: list[tuple[str, str, str]] = []
    driver = Driver(url, dataclasses.replace(settings, mode=mode),
                    report=lambda openid, kind, name, at: reported.append((openid, kind, name)))
    exchange = driver.act("alice", parse_action("/subscribe"))
    assert exchange.problem == ""
    assert exchange.reply is not None and exchange.reply.kind == "text"
    assert exchange.shown
    assert len(exchange.attempts) == 1 and exchange.attempts[0].status == 200
    assert reported == [(openid_for("alice"), "follow", "alice")]
    sent = xmltodict.parse(exchange.body)["xml"]
    if mode == "safe":
        assert set(sent) == {"ToUserName", "Encrypt"}
    else:
        assert sent["FromUserName"] == openid_for("alice")
    assert ("encrypt_type" in exchange.query) == (mode != "plain")


def test_a_slow_answer_is_re_delivered_with_the_same_body(settings, serve):
    peer = Peer(["slow"])
    driver = Driver(serve(peer.app), settings, timeout=0.3)
    exchange = driver.act("alice", parse_action("你好"))
    assert [a.error for a in exchange.attempts] == ["timeout", ""]
    assert exchange.shown == "ok 2"
    (first_query, first_body), (second_query, second_body) = peer.seen
    assert (first_query, first_body) == (second_query, second_body)


def test_no_answer_in_time_shows_the_failure_notice(settings, serve):
    peer = Peer(["slow", "500", "slow", "ok"])
    driver = Driver(serve(peer.app), settings, timeout=0.3, deliveries=3)
    exchange = driver.act("alice", parse_action("你好"))
    assert exchange.shown == FAILURE_NOTICE
    assert [a.status for a in exchange.attempts] == [None, 500, None]
    assert exchange.to_json()["reply_type"] == "failed"


def test_an_invalid_reply_shows_the_failure_notice_without_retry(settings, serve):
    peer = Peer(["misaddressed"])
    exchange = Driver(serve(peer.app), settings).act("alice", parse_action("你好"))
    assert exchange.shown == FAILURE_NOTICE
    assert "ToUserName" in exchange.problem
    assert len(peer.seen) == 1


def test_an_unreachable_webhook_shows_the_failure_notice(settings):
    driver = Driver("http://127.0.0.1:9/wechat", settings, timeout=0.5, deliveries=2)
    exchange = driver.act("alice", parse_action("你好"))
    assert exchange.shown == FAILURE_NOTICE
    assert all(a.error.startswith("cannot connect") for a in exchange.attempts)


def test_create_time_and_timestamp_follow_the_virtual_clock(settings, serve):
    clock.install(clock.VirtualClock(start=1_780_000_000, speed=0))
    peer = Peer([])
    Driver(serve(peer.app), settings).act("alice", parse_action("/click HELP"))
    query, body = peer.seen[0]
    assert query["timestamp"] == "1780000000"
    fields = xmltodict.parse(body)["xml"]
    assert fields["CreateTime"] == "1780000000"
    assert (fields["Event"], fields["EventKey"]) == ("CLICK", "HELP")


def test_a_platform_only_action_posts_nothing(settings, serve):
    peer = Peer([])
    reported = []
    driver = Driver(serve(peer.app), settings, report=lambda *args: reported.append(args[1]))
    exchange = driver.act("alice", parse_action("/block"))
    assert exchange.request_xml == "" and exchange.shown == ""
    assert reported == ["block"] and peer.seen == []


def test_mass_send_is_confirmed_to_the_webhook_in_safe_mode(settings, serve):
    safe = dataclasses.replace(settings, mode="safe")
    peer = Peer([])
    api = create_api(safe, webhook_url=serve(peer.app))
    platform = api.extensions["sim.platform"]
    platform.record(openid_for("alice"), "follow", "alice")
    answer = platform.send_mass({"filter": {"is_to_all": True}, "msgtype": "text",
                                 "text": {"content": "本周文章"}}, "all")
    deadline = time.monotonic() + 5
    while not peer.seen and time.monotonic() < deadline:
        time.sleep(0.05)
    query, body = peer.seen[0]
    encrypt = xmltodict.parse(body)["xml"]["Encrypt"]
    plain = Envelope(safe.token, safe.aes_key, safe.appid).open(
        encrypt, query["msg_signature"], query["timestamp"], query["nonce"])
    event = xmltodict.parse(plain)["xml"]
    assert event["Event"] == "MASSSENDJOBFINISH"
    assert event["FromUserName"] == PLATFORM_SENDER
    assert (event["MsgID"], event["SentCount"], event["TotalCount"]) == \
        (str(answer["msg_id"]), "1", "1")


def test_the_handshake_passes_with_the_right_token_only(make_app, settings, serve):
    url = serve(make_app())
    assert Driver(url, settings).handshake() == ""
    wrong = dataclasses.replace(settings, token="anothertoken")
    assert "HTTP 403" in Driver(url, wrong).handshake()
    assert "instead of echoing" in Driver(serve(Peer([]).app), settings).handshake()

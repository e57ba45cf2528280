"""The fake API over HTTP: real endpoints and JSON shapes, met by the bot's own client."""

from __future__ import annotations

import json
import re

import fakeredis
import pytest

from bot import clock
from bot.simulator.api import create_api
from bot.simulator.driver import openid_for
from bot.simulator.server import BackgroundServer
from bot.wechat.api import DROP, ApiError, WeChatApi

RID = re.compile(r" rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$")


@pytest.fixture
def token(http, sim_settings) -> str:
    answer = http.get("/cgi-bin/token", query_string={
        "grant_type": "client_credential", "appid": sim_settings.appid,
        "secret": sim_settings.appsecret}).get_json()
    return answer["access_token"]


def follow(http, name: str, kind: str = "follow") -> str:
    openid = openid_for(name)
    answer = http.post("/sim/activity", json={"openid": openid, "kind": kind, "name": name})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return openid


def test_errors_carry_errcode_and_a_rid(http):
    answer = http.post("/cgi-bin/message/custom/send", query_string={"access_token": "nope"},
                       data="{}")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["errcode"] == 40001
    assert body["errmsg"].startswith("invalid credential")
    assert RID.search(body["errmsg"])


@pytest.mark.parametrize(("data", "code"), [("", 44002), ("{not json", 47001), ("[1]", 47001)])
def test_unreadable_bodies(http, token, data, code):
    answer = http.post("/cgi-bin/message/custom/send", query_string={"access_token": token},
                       data=data)
    assert answer.get_json()["errcode"] == code


def test_custom_send_writes_the_delivery_log(http, token, tmp_path):
    openid = follow(http, "alice")
    body = {"touser": openid, "msgtype": "text", "text": {"content": "早上好"}}
    answer = http.post("/cgi-bin/message/custom/send", query_string={"access_token": token},
                       data=json.dumps(body, ensure_ascii=False).encode())
    assert answer.get_json() == {"errcode": 0, "errmsg": "ok"}
    line = json.loads((tmp_path / "deliveries.jsonl").read_text(encoding="utf-8"))
    assert {k: line[k] for k in ("openid", "user", "api", "msgtype", "content")} == {
        "openid": openid, "user": "alice", "api": "custom", "msgtype": "text",
        "content": "早上好"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", line["time"])
    listed = http.get("/sim/deliveries", query_string={"openid": openid, "after": 0}).get_json()
    assert [d["content"] for d in listed["deliveries"]] == ["早上好"]
    assert http.get("/sim/deliveries", query_string={"after": listed["last"]}).get_json()[
        "deliveries"] == []


@pytest.mark.parametrize(
    "body",
    [{"openid": "o1", "kind": "dance"}, {"kind": "follow"}, {"openid": "o1", "kind": "follow",
                                                             "time": "noon"}],
)
def test_activity_is_checked(http, body):
    answer = http.post("/sim/activity", json=body)
    assert answer.status_code == 400
    assert "error" in answer.get_json()


def test_subscribers_lists_what_the_platform_knows(http):
    follow(http, "alice")
    follow(http, "alice", "block")
    (alice,) = http.get("/sim/subscribers").get_json()["subscribers"]
    assert (alice["name"], alice["following"], alice["blocked"]) == ("alice", True, True)


def test_the_clock_moves_only_when_virtual(sim_settings, tmp_path):
    wall = create_api(sim_settings).test_client()
    assert wall.get("/sim/clock").get_json()["virtual"] is False
    assert wall.post("/sim/clock", json={"advance": 60}).status_code == 400
    virtual = clock.VirtualClock(start=1_800_000_000, speed=0)
    clock.install(virtual)
    http = create_api(sim_settings, virtual_clock=virtual).test_client()
    answer = http.post("/sim/clock", json={"advance": 3600}).get_json()
    assert answer["now"] == 1_800_003_600
    assert answer["iso"] == "2027-01-15T17:00:00+08:00"


def test_menu_over_http(http, token):
    assert http.get("/cgi-bin/menu/get", query_string={"access_token": token}).get_json()[
        "errcode"] == 46003
    menu = {"button": [{"type": "click", "name": "帮助", "key": "HELP"}]}
    created = http.post("/cgi-bin/menu/create", query_string={"access_token": token},
                        json=menu)
    assert created.get_json()["errcode"] == 0
    assert http.get("/cgi-bin/menu/get", query_string={"access_token": token}).get_json() == {
        "menu": menu}
    assert http.get("/sim/menu").get_json() == {"button": menu["button"], "created": True}


# --- the bot's client against the fake API, over a real socket -----------------------------------


@pytest.fixture
def served(api_app):
    with BackgroundServer(api_app) as server:
        yield server


@pytest.fixture
def client(served, sim_settings) -> WeChatApi:
    return WeChatApi(served.url, sim_settings.appid, sim_settings.appsecret,
                     fakeredis.FakeRedis(decode_responses=True))


def test_the_bots_client_sends_inside_the_window_and_is_refused_outside(client, api_app):
    http = api_app.test_client()
    openid = follow(http, "alice")
    for _ in range(3):
        client.send_text(openid, "欢迎")
    with pytest.raises(ApiError) as caught:
        client.send_text(openid, "one too many")
    assert caught.value.code == 45047
    assert caught.value.fate == DROP
    assert len(api_app.extensions["sim.platform"].log.since(0)) == 3


def test_the_bots_client_recovers_from_a_replaced_token(client, api_app, sim_settings):
    http = api_app.test_client()
    openid = follow(http, "bob", "message")
    follow(http, "bob")
    client.send_text(openid, "first")
    platform = api_app.extensions["sim.platform"]
    virtual = clock.VirtualClock(start=clock.now(), speed=0)
    clock.install(virtual)
    platform.issue_token("client_credential", sim_settings.appid, sim_settings.appsecret)
    virtual.advance(400)  # past the grace period: the client's cached token is now invalid
    client.send_text(openid, "second")
    assert [e["content"] for e in platform.log.since(0)] == ["first", "second"]


def test_the_bots_client_mass_sends_and_creates_menus(client, api_app):
    http = api_app.test_client()
    alice, bob = follow(http, "alice"), follow(http, "bob")
    body = {"filter": {"is_to_all": True}, "msgtype": "text", "text": {"content": "本周文章"},
            "clientmsgid": "weekly-1"}
    msg_id = client.call("/cgi-bin/message/mass/sendall", body)["msg_id"]
    assert msg_id > 0
    with pytest.raises(ApiError) as caught:
        client.mass_send([alice, bob], "again", clientmsgid="weekly-1")
    assert caught.value.code == 45065
    client.create_menu({"button": [{"type": "click", "name": "帮助", "key": "HELP"}]})
    assert client.get_menu()["menu"]["button"][0]["key"] == "HELP"
    reached = {e["openid"] for e in api_app.extensions["sim.platform"].log.since(0)}
    assert reached == {alice, bob}


# --- the page's endpoints -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [({"user": "", "line": "hi"}, 400), ({"user": "a b", "line": "hi"}, 400),
     ({"user": "alice"}, 400), ({"user": "alice", "line": "hi"}, 409)],
)
def test_act_refuses_what_it_cannot_send(http, body, status):
    answer = http.post("/sim/act", json=body)
    assert answer.status_code == status
    assert answer.get_json()["error"]


def test_act_explains_a_bad_command(sim_settings):
    app = create_api(sim_settings, webhook_url="http://127.0.0.1:9/wechat")
    answer = app.test_client().post("/sim/act", json={"user": "alice", "line": "/fly"})
    assert answer.status_code == 400
    assert "/subscribe" in answer.get_json()["error"]


def test_the_stream_sends_each_delivery_as_an_event(http, api_app, token):
    openid = follow(http, "alice")
    api_app.extensions["sim.platform"].send_custom(
        {"touser": openid, "msgtype": "text", "text": {"content": "推送"}})
    response = http.get("/sim/stream", query_string={"after": 0})
    assert response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    assert next(chunks).startswith(b"retry:")
    event = next(chunks).decode()
    response.close()
    head, data = event.split("data: ", 1)
    assert head == "id: 1\nevent: delivery\n"
    assert json.loads(data)["content"] == "推送"


def test_sim_send_follows_the_api_clock(served):
    from click.testing import CliRunner

    from bot.simulator.commands import sim

    served.app.extensions["sim.clock"] = clock.VirtualClock(start=1_790_000_000, speed=0)
    result = CliRunner().invoke(sim, ["send", "hi", "--url", "http://127.0.0.1:9/wechat",
                                      "--api", served.url, "--now", "api", "--deliveries", "1",
                                      "--timeout", "0.5"])
    assert result.exit_code == 1  # nothing listens at the webhook URL
    assert int(clock.now()) == 1_790_000_000

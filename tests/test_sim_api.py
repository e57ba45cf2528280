"""The fake API over HTTP: real endpoints and JSON shapes, met by the bot's own client; the kind of
account it plays, what it counts, and passive replies in its delivery log."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys

import fakeredis
import pytest
from click.testing import CliRunner

from bot import clock
from bot.settings import ROOT
from bot.simulator.api import create_api
from bot.simulator.chat import PushWatcher, account_line
from bot.simulator.commands import sim
from bot.simulator.driver import Exchange, openid_for, shown_reply
from bot.simulator.server import BackgroundServer
from bot.simulator.wire import ReadReply
from bot.wechat import privileges
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
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00", line["time"])
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
    virtual.advance(400)  # a plain token does not touch the stable one the client holds
    client.send_text(openid, "second")
    platform.stable_token("client_credential", sim_settings.appid, sim_settings.appsecret,
                          force_refresh=True)  # another tool forces: the client's token dies
    client.send_text(openid, "third")
    assert [e["content"] for e in platform.log.since(0)] == ["first", "second", "third"]
    assert platform.refusals[40001] == 1


def test_the_bots_client_mass_sends_and_creates_menus(client, api_app):
    http = api_app.test_client()
    alice, bob = follow(http, "alice"), follow(http, "bob")
    body = {"filter": {"is_to_all": True}, "msgtype": "text", "text": {"content": "本周文章"},
            "clientmsgid": "weekly-1"}
    msg_id = client.call("/cgi-bin/message/mass/sendall", body)["msg_id"]
    assert msg_id > 0
    with pytest.raises(ApiError) as caught:  # by openid list: verified service accounts only
        client.mass_send([alice, bob], "again", clientmsgid="weekly-2")
    assert (caught.value.code, caught.value.fate) == (48001, DROP)
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


# --- the kind of account played ------------------------------------------------------------------


def token_of(http, sim_settings) -> str:
    return http.post("/cgi-bin/stable_token", json={
        "grant_type": "client_credential", "appid": sim_settings.appid,
        "secret": sim_settings.appsecret, "force_refresh": False}).get_json()["access_token"]


def test_an_unverified_account_is_refused_and_the_refusals_counted(sim_settings, tmp_path):
    http = create_api(sim_settings, verified=False).test_client()
    openid = follow(http, "alice", "message")
    follow(http, "alice")
    token = token_of(http, sim_settings)  # token endpoints are open to every account
    for path, body in [("/cgi-bin/message/custom/send",
                        {"touser": openid, "msgtype": "text", "text": {"content": "hi"}}),
                       ("/cgi-bin/tags/create", {"tag": {"name": "周报"}}),
                       ("/cgi-bin/menu/create", {"button": [{"type": "click", "name": "x",
                                                              "key": "K"}]})]:
        answer = http.post(path, query_string={"access_token": token}, json=body).get_json()
        assert answer["errcode"] == 48001, path
        assert answer["errmsg"].startswith("api unauthorized") and RID.search(answer["errmsg"])
    http.post("/cgi-bin/message/custom/send", query_string={"access_token": "nope"}, data="{}")
    assert http.get("/sim/refusals").get_json() == {"40001": 1, "48001": 3}
    assert http.get("/sim/calls").get_json() == {
        "/cgi-bin/stable_token": 1, "/cgi-bin/message/custom/send": 2,
        "/cgi-bin/tags/create": 1, "/cgi-bin/menu/create": 1}
    assert http.get("/sim/deliveries", query_string={"after": 0}).get_json()["deliveries"] == []


@pytest.mark.parametrize("kind", privileges.KINDS, ids=lambda k: privileges.describe(*k))
def test_sim_account_says_which_kind_is_played(sim_settings, kind):
    http = create_api(sim_settings, account_type=kind[0], verified=kind[1]).test_client()
    assert http.get("/sim/account").get_json() == {
        "type": kind[0], "verified": kind[1], "kind": privileges.describe(*kind),
        "channels": list(privileges.channels_for(*kind))}
    assert privileges.describe(*kind) in http.get("/").get_data(as_text=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sim_api_plays_config_kind_unless_told(tmp_path):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "account.yaml").write_text("type: service\nverified: false\n")
    port = _free_port()
    env = {**os.environ, "BOT_DATA_DIR": str(tmp_path / "var"), "BOT_CONFIG_DIR": str(config_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sim", "api", "--port", str(port), "--verified", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [process.stdout.readline().strip() for _ in range(3)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert lines[2] == ("playing a verified service account "
                        "(digest channels: visit, tag, custom, mass)"), lines


# --- the stable token and tags over HTTP ---------------------------------------------------------


def test_stable_token_over_http(http, sim_settings):
    first = token_of(http, sim_settings)
    assert token_of(http, sim_settings) == first
    forced = http.post("/cgi-bin/stable_token", json={
        "grant_type": "client_credential", "appid": sim_settings.appid,
        "secret": sim_settings.appsecret, "force_refresh": True}).get_json()
    assert forced["access_token"] != first and forced["expires_in"] == 7200
    assert http.get("/cgi-bin/menu/get", query_string={"access_token": first}).get_json()[
        "errcode"] == 40001
    wrong = http.post("/cgi-bin/stable_token", json={
        "grant_type": "client_credential", "appid": sim_settings.appid, "secret": "x"})
    assert wrong.get_json()["errcode"] == 40125
    assert http.post("/cgi-bin/stable_token", data="").get_json()["errcode"] == 44002


def test_the_bots_client_tags_followers_and_sends_to_the_tag(client, api_app):
    http = api_app.test_client()
    alice, bob, carol = follow(http, "alice"), follow(http, "bob"), follow(http, "carol")
    tag_id = client.create_tag("周报")
    assert tag_id == 100 and client.tags() == {"周报": 100}
    client.tag_members(tag_id, [alice, bob])
    assert client.tagged(tag_id) == [alice, bob]
    token = client.token()
    assert http.post("/cgi-bin/tags/getidlist", query_string={"access_token": token},
                     json={"openid": alice}).get_json() == {"tagid_list": [100]}
    client.tag_members(tag_id, [bob], add=False)
    msg_id = client.mass_send_tag(tag_id, "本周文章", "weekly-1")
    platform = api_app.extensions["sim.platform"]
    assert [(e["openid"], e["msg_id"]) for e in platform.log.since(0)] == [(alice, msg_id)]
    with pytest.raises(ApiError) as caught:
        client.mass_send_tag(999, "no such tag", "weekly-2")
    assert caught.value.code == -1
    calls = http.get("/sim/calls").get_json()
    assert calls["/cgi-bin/tags/members/batchtagging"] == 1
    assert calls["/cgi-bin/tags/members/batchuntagging"] == 1
    assert calls["/cgi-bin/user/tag/get"] == 2  # a page, then the empty one that ends the list
    deleted = http.post("/cgi-bin/tags/delete", query_string={"access_token": token},
                        json={"tag": {"id": tag_id}}).get_json()
    assert deleted == {"errcode": 0, "errmsg": "ok"} and client.tags() == {}
    assert not any(e["openid"] == carol for e in platform.log.since(0))  # never tagged


def test_a_verified_service_account_sends_by_openid_list(client, api_app):
    http = api_app.test_client()
    api_app.extensions["sim.platform"].account_type = "service"
    alice, bob = follow(http, "alice"), follow(http, "bob")
    client.mass_send([alice, bob], "本周文章", clientmsgid="weekly-1")
    with pytest.raises(ApiError) as caught:
        client.mass_send([alice, bob], "again", clientmsgid="weekly-1")
    assert caught.value.code == 45065
    token = client.token()
    one = http.post("/cgi-bin/message/mass/send", query_string={"access_token": token},
                    json={"touser": [alice], "msgtype": "text", "text": {"content": "x"}})
    assert one.get_json()["errcode"] == 40130


# --- passive replies -----------------------------------------------------------------------------


def test_sim_reply_logs_what_the_subscriber_was_shown(http):
    openid = follow(http, "alice")
    answer = http.post("/sim/reply", json={"openid": openid, "msgtype": "text",
                                           "content": "你好"})
    assert answer.status_code == 200
    entry = answer.get_json()
    assert (entry["user"], entry["api"], entry["msgtype"], entry["content"]) == \
        ("alice", "reply", "text", "你好")
    for bad in ({"openid": openid, "msgtype": "image", "content": "x"},
                {"openid": openid, "msgtype": "text"},
                {"msgtype": "text", "content": "x"},
                {"openid": openid, "msgtype": "text", "content": "x", "time": "noon"}):
        assert http.post("/sim/reply", json=bad).status_code == 400


def test_the_shown_reply_of_an_exchange():
    def exchange(reply: ReadReply | None, problem: str = "") -> Exchange:
        return Exchange("alice", "oA", "hi", "<xml/>", reply=reply, problem=problem)

    news = ReadReply("news", {"Articles": {"item": {
        "Title": "周报", "Description": "本周三篇", "Url": "https://example.com/a"}}}, "")
    assert shown_reply(exchange(news)) == ("news", "周报\n本周三篇\nhttps://example.com/a")
    text = ReadReply("text", {"Content": "你好"}, "")
    assert shown_reply(exchange(text)) == ("text", "你好")
    assert shown_reply(exchange(text, problem="no answer")) is None
    assert shown_reply(exchange(ReadReply("none", {}, ""))) is None
    assert shown_reply(exchange(ReadReply("image", {}, ""))) is None


@pytest.fixture
def webhook(make_app):
    """The real bot's webhook, on its own port."""
    with BackgroundServer(make_app(api_base="http://127.0.0.1:1")) as server:
        yield server.url + "/wechat"


def test_the_pages_driver_logs_each_passive_reply_once(webhook, settings, tmp_path):
    app = create_api(settings, webhook_url=webhook, log_path=tmp_path / "deliveries.jsonl")
    page = app.test_client()
    shown = [page.post("/sim/act", json={"user": "alice", "line": line}).get_json()["shown"]
             for line in ("/subscribe", "价值观", "/block")]
    replies = [e for e in app.extensions["sim.platform"].log.since(0) if e["api"] == "reply"]
    assert [e["content"] for e in replies] == shown[:2]
    assert {(e["user"], e["openid"]) for e in replies} == {("alice", openid_for("alice"))}
    lines = (tmp_path / "deliveries.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["api"] for line in lines] == ["reply", "reply"]


def test_sim_send_posts_the_reply_to_the_fake_api(webhook, settings):
    app = create_api(settings)
    with BackgroundServer(app) as api:
        result = CliRunner().invoke(sim, ["send", "/subscribe", "--url", webhook, "--api",
                                          api.url, "--json"])
        assert result.exit_code == 0, result.output
        text = json.loads(result.output)["text"]
        (entry,) = app.extensions["sim.platform"].log.since(0)
    assert (entry["api"], entry["msgtype"], entry["content"], entry["user"]) == \
        ("reply", "text", text, "alice")


def test_sim_chat_leaves_replies_out_of_its_pushes_and_names_the_kind(served):
    platform = served.app.extensions["sim.platform"]
    openid = openid_for("alice")
    platform.record(openid, "follow", "alice")
    out: list[str] = []
    watcher = PushWatcher(served.url, openid, out.append)
    platform.show_reply(openid, "alice", "text", "被动回复")
    platform.send_custom({"touser": openid, "msgtype": "text", "text": {"content": "推送"}})
    watcher.poll()
    assert len(out) == 1 and "[推送 custom/text" in out[0] and "推送" in out[0]
    assert account_line(served.url) == ("the fake API is playing a verified subscription "
                                        "account (digest channels: visit, tag, custom)")
    assert account_line("http://127.0.0.1:9") == ""

"""The simulator's process holds real secrets when pointed at a real account: it answers only
loopback (or explicitly allowed) Host names, and reads bounded bodies and chat lines."""

from __future__ import annotations

import json
import logging

import fakeredis
import pytest
import requests
from click.testing import CliRunner

from bot.simulator import page
from bot.simulator.api import (
    FOREIGN_HOST,
    MAX_BODY_BYTES,
    TOO_LARGE,
    create_api,
    host_allowed,
)
from bot.simulator.commands import sim
from bot.simulator.driver import openid_for
from bot.simulator.server import BackgroundServer
from bot.wechat.api import DROP, ApiError, WeChatApi

# --- Host: loopback names only, unless allowed ---------------------------------------------------


@pytest.mark.parametrize("host", [
    "localhost", "localhost:8701", "LocalHost:80", "localhost:", "127.0.0.1", "127.0.0.1:8701",
    "127.5.6.7", "127.255.255.254:1", "[::1]", "[::1]:8701", "[0:0:0:0:0:0:0:1]:8701",
])
def test_loopback_hosts_are_served(host):
    assert host_allowed(host)


@pytest.mark.parametrize("host", [
    "", "evil.example", "evil.example:8701", "localhost.evil.example", "evil.localhost",
    "127.0.0.1.evil.example", "127.0.0.1.nip.io:8701", "127.1", "0x7f.0.0.1", "0177.0.0.1",
    "2130706433", "0.0.0.0", "10.0.0.1:8701", "::1", "[127.0.0.1]", "[::2]", "localhost:abc",
    "localhost:8701:1", "local host", "[::1]evil",
])
def test_other_hosts_are_refused(host):
    assert not host_allowed(host)


def test_allowed_hosts_match_by_name_or_by_name_and_port():
    assert host_allowed("devbox:8701", {"devbox"}) and host_allowed("DEVBOX", {"devbox"})
    assert host_allowed("devbox:8701", {"devbox:8701"})
    assert not host_allowed("devbox:9000", {"devbox:8701"})
    assert not host_allowed("devbox.evil.example", {"devbox"})
    assert host_allowed("[fd00::5]:8701", {"[fd00::5]"})


REFUSED_PATHS = [
    ("GET", "/"), ("GET", "/static/chat.js"), ("POST", "/sim/act"), ("GET", "/sim/menu"),
    ("GET", "/sim/stream"), ("GET", "/sim/deliveries"), ("GET", "/sim/subscribers"),
    ("GET", "/sim/clock"), ("POST", "/sim/clock"), ("POST", "/sim/activity"),
    ("GET", "/no/such/page"),
]


@pytest.mark.parametrize(("method", "path"), REFUSED_PATHS)
def test_every_page_and_sim_endpoint_refuses_a_foreign_host(http, method, path, caplog):
    caplog.set_level(logging.WARNING, logger="bot.simulator.api")
    answer = http.open(path, method=method, headers={"Host": "rebind.evil.example:8701"},
                       json={"user": "alice", "line": "hi", "openid": "o", "kind": "follow"})
    assert answer.status_code == 403
    assert "rebind.evil.example" in answer.get_json()["error"]
    assert "--allow-host" in answer.get_json()["error"]
    (line,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert f"refused {method} {path}: Host 'rebind.evil.example:8701'" in line


def test_a_foreign_host_refusal_does_nothing(http, api_app):
    http.post("/sim/activity", json={"openid": "o1", "kind": "follow", "name": "mallory"},
              headers={"Host": "evil.example"})
    assert api_app.extensions["sim.platform"].subscribers == {}


def test_cgi_bin_refuses_a_foreign_host_in_wechats_shape(http, sim_settings):
    answer = http.get("/cgi-bin/token", headers={"Host": "evil.example"}, query_string={
        "grant_type": "client_credential", "appid": sim_settings.appid,
        "secret": sim_settings.appsecret})
    assert answer.status_code == 403
    body = answer.get_json()
    assert body["errcode"] == FOREIGN_HOST and "access_token" not in body
    assert "--allow-host" in body["errmsg"]


@pytest.mark.parametrize("base_url", [
    "http://localhost/", "http://localhost:8701/", "http://127.0.0.1:8701/",
    "http://127.3.2.1/", "http://[::1]:8701/",
])
def test_loopback_hosts_reach_the_page_and_the_api(api_app, base_url, sim_settings):
    http = api_app.test_client()
    assert http.get("/", base_url=base_url).status_code == 200
    assert http.get("/sim/clock", base_url=base_url).status_code == 200
    token = http.get("/cgi-bin/token", base_url=base_url, query_string={
        "grant_type": "client_credential", "appid": sim_settings.appid,
        "secret": sim_settings.appsecret}).get_json()
    assert token["access_token"]


def test_allowed_hosts_are_served(sim_settings):
    http = create_api(sim_settings, allowed_hosts=["DevBox", "sim.lan:8701"]).test_client()
    for host in ("devbox", "devbox:8701", "sim.lan:8701"):
        assert http.get("/sim/clock", headers={"Host": host}).status_code == 200, host
    assert http.get("/sim/clock", headers={"Host": "sim.lan:9999"}).status_code == 403


def test_the_bots_client_is_served_on_loopback_and_refused_for_good_elsewhere(api_app,
                                                                             sim_settings):
    http = api_app.test_client()
    openid = openid_for("alice")
    http.post("/sim/activity", json={"openid": openid, "kind": "follow", "name": "alice"})
    with BackgroundServer(api_app) as served:
        port = served.url.rsplit(":", 1)[1]
        for base in (served.url, f"http://localhost:{port}"):
            client = WeChatApi(base, sim_settings.appid, sim_settings.appsecret,
                               fakeredis.FakeRedis(decode_responses=True))
            client.send_text(openid, f"via {base}")
        foreign = WeChatApi(served.url, sim_settings.appid, sim_settings.appsecret,
                            fakeredis.FakeRedis(decode_responses=True))
        foreign.http.headers["Host"] = "sim.evil.example"
        with pytest.raises(ApiError) as caught:
            foreign.send_text(openid, "never")
    assert caught.value.code == FOREIGN_HOST and caught.value.fate == DROP
    assert [e["content"] for e in api_app.extensions["sim.platform"].log.since(0)] == [
        f"via {served.url}", f"via http://localhost:{port}"]


def test_sim_api_takes_allow_host_options(monkeypatch, tmp_path):
    served = {}

    class Server:
        server_port = 8701

        def serve_forever(self) -> None:
            pass

        def server_close(self) -> None:
            pass

    def make_server(host, port, app, threaded):
        served["app"] = app
        return Server()

    monkeypatch.setattr("werkzeug.serving.make_server", make_server)
    monkeypatch.setattr("signal.signal", lambda *args: None)
    result = CliRunner().invoke(
        sim, ["api", "--host", "192.168.1.5", "--allow-host", "DevBox", "--allow-host",
              "[fd00::1]:8701", "--log", str(tmp_path / "log.jsonl")],
        env={"BOT_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "also serving Host devbox, [fd00::1]:8701" in result.output
    http = served["app"].test_client()
    for host in ("devbox:8701", "[fd00::1]:8701", "192.168.1.5:8701", "127.0.0.1:8701"):
        assert http.get("/sim/clock", headers={"Host": host}).status_code == 200, host
    for host in ("[fd00::1]:8702", "evil.example:8701"):
        assert http.get("/sim/clock", headers={"Host": host}).status_code == 403, host


@pytest.mark.parametrize("value", ["", "a/b", "http://devbox", "devbox:port", "a b"])
def test_sim_api_refuses_a_malformed_allow_host(value):
    result = CliRunner().invoke(sim, ["api", "--allow-host", value])
    assert result.exit_code == 2
    assert "--allow-host" in result.output


# --- bounded bodies and lines ------------------------------------------------------------------


def test_a_line_at_the_cap_is_read_and_one_byte_more_is_refused(http):
    at_cap = http.post("/sim/act", json={"user": "alice", "line": "a" * page.MAX_LINE_BYTES})
    assert at_cap.status_code == 409  # past the caps: only the missing webhook stops it
    over = http.post("/sim/act", json={"user": "alice", "line": "a" * (page.MAX_LINE_BYTES + 1)})
    assert over.status_code == 413
    assert over.get_json()["error"] == (
        f"the line is {page.MAX_LINE_BYTES + 1} bytes of UTF-8; the simulator sends at most "
        f"{page.MAX_LINE_BYTES} bytes (16 KiB) a line")


def test_the_line_cap_counts_utf8_bytes(http):
    line = "微" * (page.MAX_LINE_BYTES // 3 + 1)  # fewer characters than the cap, more bytes
    answer = http.post("/sim/act", json={"user": "alice", "line": line})
    assert answer.status_code == 413
    assert f"{len(line.encode())} bytes" in answer.get_json()["error"]
    escaped = json.dumps({"user": "alice", "line": line[:-1]})  # \uXXXX: 6 bytes a character
    assert http.post("/sim/act", data=escaped, content_type="application/json"
                     ).status_code == 409  # within both caps


def test_a_body_over_the_cap_is_refused_before_it_is_read(http):
    body = json.dumps({"user": "alice", "line": "hi", "pad": "x" * page.ACT_BODY_BYTES})
    answer = http.post("/sim/act", data=body, content_type="application/json")
    assert answer.status_code == 413
    assert answer.get_json() == {"error": f"request body over {page.ACT_BODY_BYTES} bytes"}


def test_caps_hold_over_a_real_socket(api_app):
    with BackgroundServer(api_app) as served:
        huge = requests.post(served.url + "/sim/act", timeout=10, json={
            "user": "alice", "line": "x" * (10 * 1024 * 1024)})
        long_line = requests.post(served.url + "/sim/act", timeout=10, json={
            "user": "alice", "line": "x" * (page.MAX_LINE_BYTES + 1)})
        foreign = requests.post(served.url + "/sim/act", timeout=10, json={
            "user": "alice", "line": "hi"}, headers={"Host": "evil.example"})
    assert (huge.status_code, huge.json()["error"]) == (
        413, f"request body over {page.ACT_BODY_BYTES} bytes")
    assert long_line.status_code == 413 and "16 KiB" in long_line.json()["error"]
    assert foreign.status_code == 403


def test_the_fake_api_caps_its_bodies_in_wechats_shape(http, sim_settings):
    token = http.get("/cgi-bin/token", query_string={
        "grant_type": "client_credential", "appid": sim_settings.appid,
        "secret": sim_settings.appsecret}).get_json()["access_token"]
    answer = http.post("/cgi-bin/message/custom/send", query_string={"access_token": token},
                       data=b"{" + b" " * MAX_BODY_BYTES + b"}")
    assert answer.status_code == 413
    assert answer.get_json()["errcode"] == TOO_LARGE


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ('{"user": "alice", "line": "\\ud800"}', "application/json", 400),  # a lone surrogate
    ('["alice", "hi"]', "application/json", 400),
    ('{"user": "alice\\n", "line": "hi"}', "application/json", 400),
    # a cross-site form or fetch without a CORS preflight can only send "simple" types
    ('{"user": "alice", "line": "hi"}', "text/plain", 400),
])
def test_act_refuses_malformed_bodies_without_acting(sim_settings, data, content_type, status):
    app = create_api(sim_settings, webhook_url="http://127.0.0.1:9/wechat")
    answer = app.test_client().post("/sim/act", data=data, content_type=content_type)
    assert answer.status_code == status
    assert answer.get_json()["error"]


@pytest.mark.parametrize("after", ["²", "١", "-1", "1e3", "", "9" * 40])
def test_seq_numbers_are_ascii_digits(http, after):
    assert http.get("/sim/stream", query_string={"after": after}).status_code == 400
    assert http.get("/sim/deliveries", query_string={"after": after}).status_code == 400
    if after:
        assert http.get("/sim/stream", headers={"Last-Event-ID": after}).status_code == 400

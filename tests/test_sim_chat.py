"""Chat lines and slash commands, the terminal chat with pushes, and the ``sim`` commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import xmltodict
from click.testing import CliRunner

from bot.settings import ROOT
from bot.simulator.actions import ActionError, parse_action
from bot.simulator.api import create_api
from bot.simulator.chat import run_chat
from bot.simulator.commands import sim
from bot.simulator.driver import FAILURE_NOTICE, Driver, api_reporter, openid_for
from bot.simulator.server import BackgroundServer
from bot.simulator.wire import build_message


@pytest.mark.parametrize(
    ("line", "kind", "fields", "activity"),
    [
        ("价值观是什么", "text", {"Content": "价值观是什么"}, "message"),
        ("/subscribe", "event", {"Event": "subscribe", "EventKey": ""}, "follow"),
        ("/unsubscribe", "event", {"Event": "unsubscribe", "EventKey": ""}, "unfollow"),
        ("/click LATEST", "event", {"Event": "CLICK", "EventKey": "LATEST"}, "click"),
        ("/view https://example.com/a", "event",
         {"Event": "VIEW", "EventKey": "https://example.com/a"}, "view"),
        ("/location 23.13 113.26", "location",
         {"Location_X": 23.13, "Location_Y": 113.26, "Scale": 15, "Label": ""}, "message"),
        ("/block", "", {}, "block"),
    ],
)
def test_lines_become_messages(line, kind, fields, activity):
    action = parse_action(line)
    assert (action.kind, action.activity) == (kind, activity)
    assert {k: action.fields[k] for k in fields} == fields


def test_media_commands_build_platform_like_bodies():
    voice = parse_action("/voice 帮助")
    assert voice.fields["Recognition"] == "帮助" and voice.fields["Format"] == "amr"
    scene = parse_action("/subscribe poster-2026")
    assert scene.fields["EventKey"] == "qrscene_poster-2026"
    assert scene.fields["Ticket"].startswith("gQ")
    image = parse_action("/image")
    body = xmltodict.parse(build_message(image.kind, "oA", **image.fields))["xml"]
    assert body["PicUrl"].startswith("http://mmbiz.qpic.cn/") and body["MsgId"].isdigit()


@pytest.mark.parametrize(
    "line", ["", "   ", "/click", "/click A B", "/location north", "/location 91 0", "/voice",
             "/image cat", "/teleport"],
)
def test_malformed_lines_say_how(line):
    with pytest.raises(ActionError):
        parse_action(line)


@pytest.fixture
def stack(make_app, settings, tmp_path):
    """The real webhook and the fake API, each on its own port, wired together."""
    webhook = BackgroundServer(make_app(api_base="http://127.0.0.1:1")).start()
    api = BackgroundServer(create_api(settings, webhook_url=webhook.url + "/wechat",
                                      log_path=tmp_path / "deliveries.jsonl")).start()
    yield webhook.url + "/wechat", api
    api.stop()
    webhook.stop()


def test_the_terminal_chat_shows_replies_and_pushes(stack, settings):
    url, api = stack
    platform = api.app.extensions["sim.platform"]
    out: list[str] = []

    def lines():
        yield "/subscribe"
        platform.send_custom({"touser": openid_for("alice"), "msgtype": "text",
                              "text": {"content": "今日推荐：价值观"}})
        deadline = time.monotonic() + 5
        while not any("今日推荐" in line for line in out) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield "/bogus"
        yield "/quit"
        yield "never sent"

    driver = Driver(url, settings, report=api_reporter(api.url))
    assert run_chat(driver, "alice", lines(), out.append, api_base=api.url) == 1
    text = "\n".join(out)
    assert "公众号 [text]:" in text
    assert "[推送 custom/text" in text and "今日推荐：价值观" in text
    assert "not a command: /bogus" in text
    assert platform.subscribers[openid_for("alice")].following


def test_sim_send_prints_json(stack):
    url, api = stack
    result = CliRunner().invoke(sim, ["send", "/click HELP", "--url", url, "--api", api.url,
                                      "--json", "--user", "bob"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["reply_type"] == "text" and answer["text"] and answer["ms"] > 0
    assert answer["sent"] == "[菜单] HELP"
    assert len(answer["deliveries"]) == 1


def test_sim_send_exits_1_with_the_failure_notice():
    result = CliRunner().invoke(sim, ["send", "你好", "--url", "http://127.0.0.1:9/wechat",
                                      "--no-report", "--timeout", "0.5", "--deliveries", "1"])
    assert result.exit_code == 1
    assert FAILURE_NOTICE in result.output


def test_sim_send_refuses_a_bad_command():
    result = CliRunner().invoke(sim, ["send", "/click", "--no-report"])
    assert result.exit_code == 2
    assert "not a command" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_sim_api_prints_its_url_serves_the_page_and_stops_on_sigterm(tmp_path):
    port = _free_port()
    env = {**os.environ, "BOT_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "sim", "api", "--port", str(port),
         "--now", "2026-05-01T09:00:00+08:00", "--speed", "60"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = process.stdout.readline()
        assert f"chat page http://127.0.0.1:{port}/" in first
        assert process.stdout.readline().strip() == \
            f"delivery log: {tmp_path / 'sim' / 'deliveries.jsonl'}"
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "Delivery log" in page.text
        now = requests.get(f"http://127.0.0.1:{port}/sim/clock", timeout=5).json()
        assert now["virtual"] and now["iso"].startswith("2026-05-01T09:")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "simulator stopped" in output

"""``python -m bot run`` end to end: real processes, embedded Redis, a signed question, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bot import state
from bot.settings import DEV_TOKEN, ROOT
from bot.simulator.wire import build_message, read_reply, signed_request
from tests.conftest import process_alive, server_pid

pytestmark = [pytest.mark.slow, pytest.mark.redis_server]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> requests.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return requests.get(url, timeout=2)
        except (requests.ConnectionError, requests.Timeout):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def start_bot(port: int, sim_port: int, env: dict[str, str], *extra: str) -> subprocess.Popen:
    """``python -m bot run`` on these ports, its output readable as text."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot",
            "run",
            "--port",
            str(port),
            "--sim-port",
            str(sim_port),
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def sim_send(port: int, user: str) -> list[str]:
    """The command line of one simulated exchange with the webhook on ``port``."""
    return [
        sys.executable,
        "-m",
        "bot",
        "sim",
        "send",
        "--user",
        user,
        "--url",
        f"http://127.0.0.1:{port}/wechat",
    ]


def test_run_answers_and_stops_cleanly(tmp_path: Path) -> None:
    port, sim_port = free_port(), free_port()
    env = {**os.environ, "BOT_DATA_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    env.pop("BOT_ADMIN_TOKEN", None)
    process = start_bot(port, sim_port, env)
    try:
        console = None
        while console is None:  # `make run` prints the console's URL and its new token
            line = process.stdout.readline()
            assert line, "the runner ended before printing the console's URL"
            console = re.search(r"operator console: (\S+)  token: (\S+)", line)
        assert console.group(1) == f"http://127.0.0.1:{port}/admin"
        health = wait_for(f"http://127.0.0.1:{port}/healthz")
        assert health.status_code == 200 and health.json()["ok"]
        openid = "oRun00000000000000000000000"
        signed = signed_request(build_message("text", openid, Content="微信"), "plain", DEV_TOKEN)
        response = requests.post(
            f"http://127.0.0.1:{port}/wechat", params=signed.query, data=signed.body, timeout=5
        )
        reply = read_reply(response.content, openid)
        assert reply.kind == "text" and ("微信" in reply.text or "WeChat" in reply.text)
        page = wait_for(f"http://127.0.0.1:{sim_port}/")
        assert page.status_code == 200
        sim = [*sim_send(port, "carol"), "--json"]
        sim_env = {**env, "WECHAT_API_BASE": f"http://127.0.0.1:{sim_port}"}
        for text, expected in [
            ("/subscribe", "欢迎"),
            ("微信公众平台的价值观是什么", "——《"),
            ("/click LATEST", "最新文章"),
        ]:
            done = subprocess.run(
                [*sim, text], cwd=ROOT, env=sim_env, capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stdout + done.stderr
            assert expected in json.loads(done.stdout)["text"], done.stdout
        with requests.Session() as operator:
            refused = operator.get(console.group(1), timeout=10)
            assert refused.url.startswith(f"{console.group(1)}/login")
            page = operator.post(f"{console.group(1)}/login", data={"token": console.group(2)},
                                 timeout=30)
            assert page.status_code == 200 and "data-chart" in page.text
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "stopped web" in output and "stopped worker" in output
    assert "embedded Redis stopped" in output
    # the shipped account is an unverified subscription account: no menu API (48001)
    assert "menu: this unverified subscription account may not set its menu" in output
    assert not server_pid(tmp_path) or not process_alive(server_pid(tmp_path))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


NEW_ARTICLE = """---
title: 用完即走：微信的价值观新解
language: zh
tags: [微信, 价值观, 公众平台]
source: operators
date: 2026-01-05
---
微信的价值观是用完即走。一个好的工具应该让人用完就放下，把更多时间留给生活。
公众平台的价值观，是让真正有价值的内容发挥价值，而不是打扰用户。
"""


def test_a_digest_reaches_the_chat_when_one_is_pushed(tmp_path: Path) -> None:
    """On one virtual clock: follow and ask, the operator adds an article, the digest arrives
    (a verified account's customer-service digest; the visit channel's travel through the same
    processes is the scenario's, tests/test_scenario.py)."""
    port, sim_port = free_port(), free_port()
    content, config = tmp_path / "content", tmp_path / "config"
    shutil.copytree(ROOT / "content", content)
    shutil.copytree(ROOT / "config", config)  # as a verified account's, with personal digests
    (config / "account.yaml").write_text(
        (config / "account.yaml").read_text("utf-8").replace("verified: false", "verified: true"),
        "utf-8")
    (config / "push.yaml").write_text(
        (config / "push.yaml").read_text("utf-8").replace("channel: visit", "channel: custom"),
        "utf-8")
    env = {**os.environ, "BOT_DATA_DIR": str(tmp_path / "var"), "BOT_CONTENT_DIR": str(content),
           "BOT_CONFIG_DIR": str(config)}
    env.pop("REDIS_URL", None)
    process = start_bot(port, sim_port, env, "--now", "2026-01-05T10:00:00+08:00")
    try:
        first = process.stdout.readline()
        shared = re.search(r"export (BOT_CLOCK=\S+)", first)
        assert shared, first
        env["BOT_CLOCK"] = shared.group(1).split("=", 1)[1]
        env["WECHAT_API_BASE"] = f"http://127.0.0.1:{sim_port}"
        env["REDIS_URL"] = state.embedded_url(tmp_path / "var")
        wait_for(f"http://127.0.0.1:{port}/healthz")
        wait_for(f"http://127.0.0.1:{sim_port}/")
        sim = sim_send(port, "carol")
        for text in ("/subscribe", "微信公众平台的价值观是什么"):
            subprocess.run(
                [*sim, text], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60
            )
        (content / "values-anew.md").write_text(NEW_ARTICLE, "utf-8")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "push",
                "run",
                "daily",
                "--now",
                "2026-01-06T09:00:00+08:00",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "sent 1" in done.stdout + done.stderr, done.stdout + done.stderr[-2000:]
        log = tmp_path / "var" / "sim" / "deliveries.jsonl"
        logged = [json.loads(line) for line in log.read_text("utf-8").splitlines()]
        pushed = [entry for entry in logged if entry["api"] != "reply"]  # not the chat's replies
        assert [(p["api"], "用完即走：微信的价值观新解" in p["content"]) for p in pushed] == [
            ("custom", True)
        ]
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)

"""The clock: real by default, virtual on demand, shared between processes through BOT_CLOCK."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bot import clock
from bot.settings import ROOT


def test_system_clock_is_wall_time() -> None:
    assert abs(clock.now() - time.time()) < 1


def test_virtual_clock_runs_at_its_speed() -> None:
    virtual = clock.VirtualClock(start=1_000_000.0, speed=3600)
    clock.install(virtual)
    first = clock.now()
    time.sleep(0.05)
    assert 1_000_000 <= first < clock.now() - 100  # 0.05 s real is ~180 s virtual
    virtual.advance(86400)
    assert clock.now() - first > 86400


def test_shared_clock_agrees_across_processes() -> None:
    value = clock.share(1_700_000_000.0, speed=60, wall=time.time() - 10)
    here = clock.from_shared(value).now()
    code = "from bot import clock; clock.install_from_env(); print(clock.now())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"BOT_CLOCK": value, "PATH": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert 1_700_000_000 + 590 < here < 1_700_000_000 + 700  # ~10 s real at 60x
    assert abs(float(out) - here) < 120  # a second or two of start-up at 60x


@pytest.mark.parametrize("value", ["tomorrow", "1@2", "1@2x-1", "a@bxc"])
def test_malformed_shared_clock_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="BOT_CLOCK"):
        clock.from_shared(value)


def test_webhook_accepts_requests_signed_on_the_shared_clock(make_app, monkeypatch) -> None:
    from bot.simulator.wire import build_message, signed_request
    from tests.conftest import WeChat

    start = 1_767_574_800.0  # 2026-01-05T09:00:00+08:00
    monkeypatch.setenv("BOT_CLOCK", clock.share(start, speed=1))
    app = make_app()
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    xml = build_message(
        "text", "oV0000000000000000000000000", create_time=int(start), Content="微信"
    )
    signed = signed_request(xml, "plain", wechat.settings.token, timestamp=str(int(start)))
    response = wechat.client.post("/wechat", query_string=signed.query, data=signed.body)
    assert response.status_code == 200

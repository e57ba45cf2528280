"""The respect figures, the report and the operator CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import fakeredis
import pytest
from click.testing import CliRunner

from bot import state
from bot.config import load_config
from bot.push import report
from bot.push.commands import push
from bot.simulator import respect
from bot.state import Keys

SH = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SH).timestamp()


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, SH).isoformat()


@pytest.fixture()
def config(tmp_path: Path):
    (tmp_path / "push.yaml").write_text(
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n"
    )
    return load_config(tmp_path)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                    encoding="utf-8")
    return path


def digest(openid: str, when: float) -> dict:
    content = "为你挑选的 1 篇新文章：x"
    return {"time": iso(when), "openid": openid, "api": "custom", "content": content}


def test_respect_counts_every_kind_of_violation(tmp_path, config):
    timeline = write(tmp_path / "t.jsonl", [
        {"time": at("2030-01-01T08:00"), "openid": "a", "event": "subscribe"},
        {"time": at("2030-01-01T08:30"), "openid": "a", "event": "message"},
        {"time": at("2030-01-01T08:00"), "openid": "b", "event": "subscribe"},
        {"time": at("2030-01-01T08:10"), "openid": "b", "event": "optout"},
        {"time": at("2030-01-01T08:00"), "openid": "c", "event": "subscribe"},
        {"time": at("2030-01-01T08:05"), "openid": "c", "event": "message"},
        {"time": at("2030-01-01T08:06"), "openid": "c", "event": "unsubscribe"},
    ])
    deliveries = write(tmp_path / "d.jsonl", [
        digest("a", at("2030-01-01T09:00")),
        digest("a", at("2030-01-01T23:00")),  # quiet hours, second in 24 h, duplicate slot
        digest("a", at("2030-01-04T09:00")),  # outside the 48 h window
        digest("b", at("2030-01-01T09:00")),  # opted out
        digest("c", at("2030-01-01T09:00")),  # unsubscribed
        {"time": iso(at("2030-01-01T10:00")), "openid": "a", "api": "custom",
         "content": "a late answer, not a digest"},
    ])
    figures = respect.check(timeline, deliveries, fakeredis.FakeRedis(decode_responses=True),
                            config, start=at("2030-01-01T00:00"), end=at("2030-01-05T00:00"))
    assert figures["digests_delivered"] == 5
    assert figures["in_quiet_hours"] == 1
    assert figures["most_digests_in_24h"] == 2
    assert figures["duplicates"] == 1
    assert figures["outside_48h_window"] == 1
    assert figures["to_opted_out"] == 1
    assert figures["to_unsubscribed"] == 1
    assert (figures["wanted_digests"], figures["got_digests"]) == (1, 1)


def test_report_table_and_chart():
    r = fakeredis.FakeRedis(decode_responses=True)
    r.hset(Keys.push_report("2030-01-02"), mapping={"daily|sent": 8, "daily|skipped-cap": 2})
    r.hset(Keys.push_report("2030-01-03"), mapping={"daily|deferred-quiet": 4})
    counts = report.daily(r, 3, dt.date(2030, 1, 3))
    assert list(counts) == ["2030-01-01", "2030-01-02", "2030-01-03"]
    table = report.table(counts).splitlines()
    assert table[0].split() == ["day", "sent", "skipped-cap", "deferred-quiet"]
    assert table[2].split() == ["2030-01-02", "8", "2", "0"]
    chart = report.chart(counts).splitlines()
    assert chart[1] == "2030-01-02 " + "█" * 32 + "·" * 8 + " 10"
    assert chart[2] == "2030-01-03 " + "▒" * 16 + " 4"


@pytest.mark.redis_server
def test_the_cli_previews_and_reports(tmp_path, monkeypatch, config):
    data = tmp_path / "var"
    url, _ = state.ensure_embedded(data)
    try:
        monkeypatch.setenv("REDIS_URL", url)
        monkeypatch.setenv("BOT_CONFIG_DIR", str(config.folder))
        monkeypatch.setenv("BOT_CONTENT_DIR", str(tmp_path / "content"))
        r = state.connect(url)
        r.hset(Keys.user("o1"), mapping={"subscribed": "1", "last_seen": 0})
        r.zadd(Keys.push_members(), {"o1": 0})
        runner = CliRunner()
        preview = runner.invoke(push, ["preview", "daily"])
        assert preview.exit_code == 0, preview.output
        assert "o1  skipped-inactive" in preview.output
        assert "skipped-inactive 1" in preview.output
        assert not r.exists(Keys.push_report("preview"))  # a preview records nothing
        missing = runner.invoke(push, ["preview", "weekly"])
        assert missing.exit_code == 1 and "no digest 'weekly'" in missing.output
        shown = runner.invoke(push, ["report", "--days", "2"])
        assert shown.exit_code == 0 and "day" in shown.output
    finally:
        state.stop_embedded(data)

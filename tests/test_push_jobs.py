"""The scheduler and the RQ jobs on a real Redis server, with a real worker and the fake API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from bot import clock, services, state, subscribers
from bot.config import load_config
from bot.push import jobs, runs, scheduler
from bot.settings import Settings
from bot.simulator.api import create_api
from bot.simulator.clock import SharedClock
from bot.simulator.server import BackgroundServer
from bot.state import Keys

pytestmark = pytest.mark.redis_server

NINE = dt.datetime(2030, 1, 7, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


@pytest.fixture()
def world(tmp_path: Path, monkeypatch):
    data = tmp_path / "var"
    url, _ = state.ensure_embedded(data)
    r = state.connect(url)
    config_dir, content_dir = tmp_path / "config", tmp_path / "content"
    config_dir.mkdir()
    content_dir.mkdir()
    (config_dir / "account.yaml").write_text("verified: true\n")
    (config_dir / "push.yaml").write_text(
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: custom\n"
    )
    (content_dir / "new.md").write_text(
        "---\ntitle: 新文章\ndate: 2030-01-07\n---\n今天的新文章。\n", encoding="utf-8"
    )
    shared = SharedClock(r, NINE - 3600)
    clock.install(shared)
    base = Settings(config_dir=config_dir, content_dir=content_dir, data_dir=data)
    api_app = create_api(base, log_path=tmp_path / "deliveries.jsonl")
    server = BackgroundServer(api_app).start()
    for name, value in {
        "REDIS_URL": url, "BOT_DATA_DIR": str(data), "BOT_CONFIG_DIR": str(config_dir),
        "BOT_CONTENT_DIR": str(content_dir), "WECHAT_API_BASE": server.url,
    }.items():
        monkeypatch.setenv(name, value)
    services.current.cache_clear()
    platform = api_app.extensions["sim.platform"]
    yield r, shared, platform, load_config(config_dir)
    services.current.cache_clear()
    server.stop()
    clock.reset()
    state.stop_embedded(data)


def drain(r, shared: SharedClock) -> None:
    """Run the queued jobs in this process, as a worker would, then take the test's clock back."""
    client = state.bytes_client(r)
    SimpleWorker([jobs.queue(r)], connection=client, serializer=JSONSerializer).work(
        burst=True, logging_level="WARNING"
    )
    clock.install(shared)


def test_a_tick_plans_each_slot_once_and_the_worker_sends(world):
    r, shared, platform, config = world
    for n in range(3):
        subscribers.on_follow(r, f"o{n}")
        subscribers.on_activity(r, f"o{n}", "message")
        platform.record(f"o{n}", "follow")
        platform.record(f"o{n}", "message")
    shared.advance(3600 + 60)
    assert scheduler.tick(r, config) == [runs.run_id("daily", NINE)]
    assert scheduler.tick(r, config) == []  # a second scheduler, or a restart: nothing
    drain(r, shared)
    assert sorted(e["openid"] for e in platform.log.since(0)) == ["o0", "o1", "o2"]
    ledger = r.hgetall(Keys.push_ledger(runs.run_id("daily", NINE)))
    assert sorted(v.split("|")[0] for v in ledger.values()) == ["sent"] * 3


def test_a_slot_missed_for_over_an_hour_is_not_sent_late(world):
    r, shared, _, config = world
    shared.advance(3600 + runs.CATCH_UP + 60)
    assert scheduler.tick(r, config) == []


def test_the_scheduler_reconciles_a_run_left_by_a_dead_worker(world):
    r, shared, platform, config = world
    subscribers.on_follow(r, "o1")
    subscribers.on_activity(r, "o1", "message")
    platform.record("o1", "follow")
    platform.record("o1", "message")
    shared.advance(3600 + 60)
    run = runs.run_id("daily", NINE)
    assert scheduler.tick(r, config) == [run]
    jobs.queue(r).empty()  # the plan job is lost with its worker
    shared.advance(scheduler.RESCHEDULE_AFTER + 60)
    assert scheduler.tick(r, config) == [f"replan {run}"]
    drain(r, shared)
    shared.advance(scheduler.RECONCILE_AFTER)
    assert scheduler.tick(r, config) == [f"reconcile {run}"]
    drain(r, shared)
    assert r.hget(Keys.push_ledger(run), "o1").startswith("sent|")
    assert "reconciled" in r.hgetall(Keys.push_plan(run))
    assert len(platform.log.since(0)) == 1

"""Mass digests by openid list (verified service accounts), and receipts matched to the runs."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bot.app import create_app
from bot.config import ConfigError, load_config
from bot.push import commands, receipts, report, runs
from bot.services import Services, build
from bot.simulator.api import PLATFORM_SENDER
from bot.simulator.wire import build_message
from bot.state import Keys
from bot.wechat.api import ApiError, WeChatApi
from tests import test_push_runs as base
from tests.conftest import WeChat

world = base.world
"""test_push_runs' world: fakeredis, virtual time from 2030-01-06 08:00 Shanghai, the fake API."""

TODAY, TOMORROW = "2030-01-06", "2030-01-07"
"""Local days of the account (Asia/Shanghai) in the world's virtual time."""

DELIVERED_THEN_BUSY = "delivered-then-busy"
"""A failure of :class:`CountingApi`: the platform takes the send, the answer says -1."""


class CountingApi:
    """The world's API client, remembering each mass call; ``failures`` answer the first ones."""

    def __init__(self, api: WeChatApi, failures: list[Exception | str]) -> None:
        self.api, self.failures = api, failures
        self.calls: list[list[str]] = []

    def send_text(self, openid: str, content: str) -> None:
        self.api.send_text(openid, content)

    def mass_send(self, openids: list[str], content: str, clientmsgid: str) -> int:
        self.calls.append(list(openids))
        failure = self.failures.pop(0) if self.failures else None
        if failure == DELIVERED_THEN_BUSY:
            self.api.mass_send(openids, content, clientmsgid)
            raise ApiError(-1, "system error")
        if isinstance(failure, Exception):
            raise failure
        return self.api.mass_send(openids, content, clientmsgid)


def mass_world(
    world, monkeypatch, account_type: str = "service", chunk: int = 3, followers: int = 8,
    failures: list[Exception | str] | None = None,
) -> CountingApi:
    """Make the world a verified ``account_type`` account with a mass digest of ``chunk``-sized
    calls (mass by openid list: verified service accounts only)."""
    folder = world.folder / "config"
    (folder / "account.yaml").write_text(
        f"type: {account_type}\nverified: true\ntimezone: Asia/Shanghai\n")
    (folder / "push.yaml").write_text(
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: mass\n    items: 2\n"
    )
    world.platform.account_type = account_type
    api = CountingApi(world.setup.api, failures or [])
    world.setup = Services(world.setup.settings, load_config(folder), world.r, api=api)
    monkeypatch.setattr(runs, "MASS_CHUNK_SIZE", chunk)
    for n in range(followers):
        world.follower(f"s{n}", message=False)
    return api


def planned(world) -> tuple[str, list[list[str]]]:
    """The run of the current slot and its chunks (nothing processed yet)."""
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai",
                                              world.clock.now()))
    chunks: list[list[str]] = []
    runs.plan(world.setup, run, lambda i, openids: chunks.append(openids))
    return run, chunks


@pytest.mark.parametrize(("account_type", "verified"),
                         [("subscription", True), ("subscription", False), ("service", False)])
def test_only_a_verified_service_account_may_have_a_mass_digest(
    tmp_path, account_type, verified
):
    (tmp_path / "account.yaml").write_text(
        f"type: {account_type}\nverified: {str(verified).lower()}\n")
    (tmp_path / "push.yaml").write_text(
        "digests:\n  - name: a\n    schedule: '0 9 * * *'\n    channel: visit\n"
        "  - name: b\n    schedule: '0 9 * * *'\n    channel: mass\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    error = caught.value
    assert (error.path.name, error.line, error.key) == ("push.yaml", 7, "digests[1].channel")
    usable = "visit, tag, custom" if verified else "visit"
    assert str(error).endswith(f"use one of: {usable}") and "48001" in str(error)


def test_a_service_account_sends_every_chunk(world, monkeypatch):
    api = mass_world(world, monkeypatch, "service")
    world.clock.advance(3600 + 60)
    _, counts = world.run()
    assert counts == {"sent": 8}
    assert [len(call) for call in api.calls] == [3, 3, 2]
    assert not world.r.exists(Keys.push_mass_day(TODAY))
    assert world.platform.refusals == {}


def test_push_run_chunks_a_mass_digest_like_the_planner(world, monkeypatch):
    mass_world(world, monkeypatch)
    monkeypatch.setattr(commands, "open_services", lambda: world.setup)
    world.clock.advance(3600 + 60)
    shown = CliRunner().invoke(commands.push, ["run", "daily"])
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[-1] == "sent 8"


@pytest.mark.parametrize(
    ("failure", "retried"),
    [(ApiError(-1, "system error"), {"sent": 3}), (DELIVERED_THEN_BUSY, {"unknown": 3})],
    ids=["refused", "delivered-then-busy"],
)
def test_a_retried_chunk_sends_once(world, monkeypatch, failure, retried):
    api = mass_world(world, monkeypatch, failures=[failure])
    world.clock.advance(3600 + 60)
    run, [first, *others] = planned(world)
    with pytest.raises(runs.RetryLater):
        runs.process_chunk(world.setup, run, first, final_attempt=False)
    world.clock.advance(90)  # the chunk job's first retry
    assert runs.process_chunk(world.setup, run, first, final_attempt=False) == retried
    assert runs.process_chunk(world.setup, run, first) == {"already-decided": 3}
    assert len(api.calls) == 2
    assert sorted(e["openid"] for e in world.delivered()) == sorted(first)


def test_a_claim_is_re_used_by_its_holder_and_released_only_by_it(fake_redis):
    assert runs.claim_mass_day(fake_redis, TODAY, "daily@1:oa")
    assert runs.claim_mass_day(fake_redis, TODAY, "daily@1:oa")
    assert not runs.claim_mass_day(fake_redis, TODAY, "daily@1:ob")
    assert runs.claim_mass_day(fake_redis, TOMORROW, "daily@2:ob")
    assert 86400 < fake_redis.ttl(Keys.push_mass_day(TODAY)) <= runs.MASS_DAY_TTL
    assert not runs.release_mass_day(fake_redis, TODAY, "daily@1:ob")
    assert runs.release_mass_day(fake_redis, TODAY, "daily@1:oa")
    assert runs.claim_mass_day(fake_redis, TODAY, "daily@1:ob")


def test_the_receipt_posted_back_lands_in_its_run_and_the_report(
    world, monkeypatch, settings, library
):
    mass_world(world, monkeypatch, followers=3)
    posted: list[dict] = []
    world.platform.notify = posted.append
    world.clock.advance(3600 + 60)
    run, _ = world.run()
    [receipt] = posted
    msg_id = str(receipt["MsgID"])
    assert world.r.hget(Keys.push_plan(run), f"mass:{msg_id}:count") == "3"
    bundle = build(settings, config=world.setup.config, redis_client=world.r, library=library)
    app = create_app(bundle)
    wechat = WeChat(app.test_client(), settings)
    fields = {name: str(value) for name, value in receipt.items() if name != "Event"}
    assert wechat.event("MASSSENDJOBFINISH", PLATFORM_SENDER, **fields).kind == "none"
    plan = world.r.hgetall(Keys.push_plan(run))
    assert (plan[f"mass:{msg_id}:status"], plan[f"mass:{msg_id}:sent"],
            plan[f"mass:{msg_id}:total"], plan[f"mass:{msg_id}:errors"]) == \
        ("send success", "3", "3", "0")
    monkeypatch.setattr(commands, "open_services", lambda: world.setup)
    shown = CliRunner().invoke(commands.push, ["report", "--days", "2"])
    assert shown.exit_code == 0, shown.output
    assert f"{run} mass msg {msg_id}: send success, 3 sent of 3, 0 errors" in shown.output
    assert "sent" in shown.output.splitlines()[0]


def test_receipts_match_in_either_order_and_two_in_one_second_both_count(wechat, fake_redis):
    run = "daily@1893891600"
    fake_redis.zadd(Keys.push_runs(), {run: 1893891600})

    def post(msg_id: str, status: str, sent: int, errors: int) -> None:
        xml = build_message(
            "event", PLATFORM_SENDER, create_time=1893891700, Event="MASSSENDJOBFINISH",
            MsgID=msg_id, Status=status, TotalCount=str(sent + errors),
            FilterCount=str(sent + errors), SentCount=str(sent), ErrorCount=str(errors),
        )
        assert wechat.reply(xml, PLATFORM_SENDER).kind == "none"

    post("1000001", "send success", 9998, 2)  # before the sender recorded its msg_id
    receipts.record_send(fake_redis, "1000001", run, 10000)
    receipts.record_send(fake_redis, "1000002", run, 4)
    post("1000002", "send fail", 0, 4)  # the same CreateTime: not a re-delivery
    assert report.mass_sends(fake_redis, 1893800000) == [
        f"{run} mass msg 1000001: send success, 9998 sent of 10000, 2 errors",
        f"{run} mass msg 1000002: send fail, 0 sent of 4, 4 errors",
    ]
    assert report.mass_sends(fake_redis, 1893900000) == []

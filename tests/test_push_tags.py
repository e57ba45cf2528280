"""The tag channel: one sendall to a tag kept in step with who may receive it, against the
simulator's platform (tags API with its limits) over HTTP, on fakeredis and virtual time."""

from __future__ import annotations

from collections import Counter

import pytest

from bot import subscribers
from bot.config import load_config
from bot.push import runs, tags
from bot.services import Services
from bot.state import Keys
from bot.wechat.api import ApiError
from tests import test_push_runs as base

world = base.world

TAGGING = ("/cgi-bin/tags/members/batchtagging", "/cgi-bin/tags/members/batchuntagging")


def tag_world(world, account_type: str = "subscription", followers: int = 6,
              extra: str = "") -> list[str]:
    """A verified ``account_type`` account with a tag digest at 09:00, and its followers."""
    folder = world.folder / "config"
    (folder / "account.yaml").write_text(
        f"type: {account_type}\nverified: true\ntimezone: Asia/Shanghai\n")
    (folder / "push.yaml").write_text(
        "limits:\n  per_day: 1\n  per_week: 3\n"
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: tag\n    items: 2\n"
        + extra
    )
    world.platform.account_type = account_type
    world.setup = Services(world.setup.settings, load_config(folder), world.r,
                           api=world.setup.api)
    return [world.follower(f"t{n}", message=False) for n in range(followers)]


def members(world) -> set[str]:
    [tag] = [i for i, name in world.platform.tags.items() if name == "digest-daily"]
    return {s.openid for s in world.platform.tagged(tag)}


def tagging_calls(world) -> int:
    return sum(world.platform.calls.get(path, 0) for path in TAGGING)


def broadcast_at_nine(world) -> tuple[str, Counter[str]]:
    """Advance to the next 09:00 slot (a few minutes past, so that yesterday's sends are more
    than 24 h old), and broadcast its run."""
    now = world.clock.now()
    world.broadcasts = getattr(world, "broadcasts", 0) + 1
    slot = runs.last_slot(world.daily, "Asia/Shanghai", now) + 86400
    world.clock.advance(slot + 120 + 60 * world.broadcasts - now)
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai", world.clock.now()))
    return run, tags.broadcast(world.setup, run)


def test_a_sendall_reaches_exactly_the_tag_members(world):
    everyone = tag_world(world)
    stopped, bored, silent = everyone[:3]
    subscribers.answer_command(world.r, stopped, subscribers.parse_command("stop"),
                               world.setup.config)
    subscribers.learn(world.r, bored, ["量子"])  # nothing about that
    world.r.hset(Keys.user(silent), "last_seen", world.clock.now() - 91 * 86400)
    run, counts = broadcast_at_nine(world)
    reached = set(everyone[3:])
    assert counts == {"sent": 3, "skipped-optout": 1, "skipped-irrelevant": 1,
                      "skipped-inactive": 1}
    assert members(world) == reached
    delivered = world.delivered()
    assert {e["openid"] for e in delivered} == reached and len(delivered) == 3
    assert {e["api"] for e in delivered} == {"mass"}
    text = delivered[0]["content"]  # one text for all: in both languages, with how to stop
    assert "为你挑选的" in text and "picked for you" in text and "退订" in text and "'stop'" in text
    ledger = world.ledger(run)
    assert {o for o, state in ledger.items() if state == "sent"} == reached
    assert world.platform.refusals == {}


def test_the_tag_follows_changes_without_a_full_re_tag(world):
    everyone = tag_world(world, followers=120)
    broadcast_at_nine(world)
    first = tagging_calls(world)
    assert first == 3  # 120 openids, 50 a call
    assert len(members(world)) == 120
    # the next day: one says stop (untagged at the next tick), one leaves, one turns silent,
    # two follow
    stop, leaves, silent = everyone[:3]
    subscribers.answer_command(world.r, stop, subscribers.parse_command("退订"),
                               world.setup.config)
    assert tags.sync(world.setup) == 1
    assert stop not in members(world) and tagging_calls(world) == first + 1
    world.platform.record(leaves, "unfollow")
    subscribers.on_unfollow(world.r, leaves)
    newcomers = [world.follower(f"new{n}", message=False) for n in range(2)]
    (world.folder / "content" / "more.md").write_text(
        "---\ntitle: 又一篇\ndate: 2030-01-07\n---\n新的。\n", encoding="utf-8")
    world.r.hset(Keys.user(silent), "last_seen", world.clock.now() - 91 * 86400)
    _, counts = broadcast_at_nine(world)
    assert tagging_calls(world) == first + 1 + 2  # one call adds, one call removes
    assert members(world) == set(everyone[3:]) | set(newcomers)
    assert counts["sent"] == 119 and counts["skipped-inactive"] == 1
    assert counts["skipped-optout"] == 1


def test_a_subscription_account_broadcasts_once_a_day(world):
    extra = "  - name: evening\n    schedule: '0 18 * * *'\n    channel: tag\n    items: 2\n"
    tag_world(world, extra=extra)
    _, counts = broadcast_at_nine(world)
    assert counts == {"sent": 6}
    world.clock.advance(9 * 3600)  # 18:01
    evening = runs.run_id("evening", runs.last_slot(
        world.setup.config.push.digest("evening"), "Asia/Shanghai", world.clock.now()))
    before = dict(world.platform.calls)
    counts = tags.broadcast(world.setup, evening)
    assert counts == {"skipped-cap": 6}  # and had they room, the day's one send is taken
    assert dict(world.platform.calls) == before


def test_who_says_stop_between_the_decision_and_the_call_is_left_out(world, monkeypatch):
    everyone = tag_world(world)
    late = everyone[0]
    real = world.setup.api.tagged

    def tagged_then_stop(tag: int) -> list[str]:
        subscribers.answer_command(world.r, late, subscribers.parse_command("stop"),
                                   world.setup.config)
        return real(tag)

    monkeypatch.setattr(world.setup.api, "tagged", tagged_then_stop)
    run, counts = broadcast_at_nine(world)
    assert counts == {"sent": 5, "skipped-optout": 1}
    assert late not in members(world)
    assert late not in {e["openid"] for e in world.delivered()}
    assert world.ledger(run)[late] == "skipped-optout"


def test_quiet_hours_at_send_time_leave_a_subscriber_out(world):
    everyone = tag_world(world)
    world.r.hset(Keys.user(everyone[0]), "quiet", "8-10")
    _, counts = broadcast_at_nine(world)
    assert counts == {"sent": 5, "skipped-quiet": 1}
    assert everyone[0] not in members(world)


def test_if_untagging_fails_nothing_is_sent_and_the_run_retries(world, monkeypatch):
    everyone = tag_world(world)
    broadcast_at_nine(world)
    subscribers.answer_command(world.r, everyone[0], subscribers.parse_command("stop"),
                               world.setup.config)
    world.r.delete(Keys.push_tag_changes())  # the tick's sync did not happen
    (world.folder / "content" / "more.md").write_text(
        "---\ntitle: 又一篇\ndate: 2030-01-07\n---\n新的。\n", encoding="utf-8")

    def busy(*args, **kwargs):
        raise ApiError(-1, "system error")

    monkeypatch.setattr(world.setup.api, "tag_members", busy)
    sent_before = len(world.delivered())
    world.clock.advance(86400 + 60)
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai", world.clock.now()))
    with pytest.raises(runs.RetryLater):
        tags.broadcast(world.setup, run, final_attempt=False)
    assert len(world.delivered()) == sent_before
    assert not world.r.exists(Keys.push_mass_day("2030-01-07"))  # the day's send is kept
    monkeypatch.undo()
    counts = tags.broadcast(world.setup, run)
    assert counts == {"sent": 5, "already-decided": 1}  # the opt-out was decided the first time
    assert everyone[0] not in {e["openid"] for e in world.delivered()[sent_before:]}


def test_a_service_account_broadcasts_to_its_tag_too(world):
    tag_world(world, account_type="service")
    _, counts = broadcast_at_nine(world)
    assert counts == {"sent": 6}
    assert world.platform.refusals == {}


def test_a_tag_deleted_in_the_console_is_made_again(world):
    tag_world(world)
    broadcast_at_nine(world)
    world.platform.tags.clear()  # the operator deleted it (and with it, every membership)
    for sub in world.platform.subscribers.values():
        sub.tags.clear()
    (world.folder / "content" / "more.md").write_text(
        "---\ntitle: 又一篇\ndate: 2030-01-07\n---\n新的。\n", encoding="utf-8")
    _, counts = broadcast_at_nine(world)
    assert counts == {"sent": 6}
    assert len(members(world)) == 6


def test_a_broadcast_waits_until_the_previous_one_is_24_hours_old(world):
    tag_world(world)
    broadcast_at_nine(world)
    (world.folder / "content" / "more.md").write_text(
        "---\ntitle: 又一篇\ndate: 2030-01-07\n---\n新的。\n", encoding="utf-8")
    world.clock.advance(86400 - 40)  # the next slot came 40 s before yesterday's sends are 24 h
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai", world.clock.now()))
    with pytest.raises(tags.NotYet) as caught:
        tags.broadcast(world.setup, run)
    assert 40 <= caught.value.seconds <= 42
    assert world.ledger(run) == {}  # nothing decided: nobody is left out by the cap
    world.clock.advance(caught.value.seconds)
    assert tags.broadcast(world.setup, run) == {"sent": 6}


def test_the_scheduler_plans_a_waiting_broadcast_once_it_may_go(world):
    from bot.push import scheduler

    tag_world(world)
    world.clock.advance(3600 + 60)  # 09:01
    config = world.setup.config
    [run] = scheduler.tick(world.r, config)
    world.r.hset(Keys.push_plan(run), "not_before", repr(world.clock.now() + 100))  # NotYet
    world.clock.advance(60)
    assert scheduler.tick(world.r, config) == []
    world.clock.advance(45)
    assert scheduler.tick(world.r, config) == [f"plan {run} (waited)"]
    assert "not_before" not in world.r.hgetall(Keys.push_plan(run))


class Killed(BaseException):
    """The worker died mid-broadcast (SIGKILL: nothing of the attempt runs after it)."""


@pytest.mark.parametrize("went_out", [False, True], ids=["before-the-call", "after-the-call"])
def test_a_broadcast_whose_worker_died_is_made_once_by_the_retry(world, monkeypatch, went_out):
    tag_world(world)
    world.clock.advance(3600 + 180)  # 09:03
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai", world.clock.now()))
    real = world.setup.api.mass_send_tag

    def dies(*args, **kwargs):
        if went_out:
            real(*args, **kwargs)
        raise Killed

    monkeypatch.setattr(world.setup.api, "mass_send_tag", dies)
    with pytest.raises(Killed):
        tags.broadcast(world.setup, run, final_attempt=False)
    monkeypatch.undo()
    assert set(world.ledger(run).values()) == {"reserved"}
    world.clock.advance(30)  # RQ's first retry: the dead attempt's lease is not over
    with pytest.raises(runs.RetryLater):
        tags.broadcast(world.setup, run, final_attempt=False)
    world.clock.advance(60)
    counts = tags.broadcast(world.setup, run, final_attempt=False)
    assert counts == ({"unknown": 6} if went_out else {"sent": 6})  # 45065: it went out before
    assert len(world.delivered()) == 6  # once each, either way
    assert world.platform.refusals == ({45065: 1} if went_out else {})

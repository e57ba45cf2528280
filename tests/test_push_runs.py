"""Digest runs end to end on fakeredis, against the simulator's fake WeChat API over HTTP."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import fakeredis
import pytest

from bot import clock, subscribers
from bot.config import load_config
from bot.push import runs
from bot.push import throttle as throttle_module
from bot.push.throttle import Candidate, Throttle, logged_sends
from bot.services import Services
from bot.settings import Settings
from bot.simulator.api import create_api
from bot.simulator.clock import SharedClock
from bot.simulator.server import BackgroundServer
from bot.state import RUN_TTL, Keys
from bot.state.timebase import server_now
from bot.wechat.api import WeChatApi

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str, zone: ZoneInfo = SHANGHAI) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


ARTICLES = {
    "values.md": ("微信的价值观", "2030-01-03", ["微信", "价值观"], "微信的价值观是用户价值。"),
    "search.md": ("How search works", "2030-01-04", ["search"], "Search ranks passages by words."),
    "design.md": ("产品设计", "2030-01-05", ["设计"], "好的产品用完即走。"),
}


@pytest.fixture()
def world(tmp_path: Path):
    r = fakeredis.FakeRedis(decode_responses=True)
    shared = SharedClock(r, at("2030-01-06T08:00:00"))
    clock.install(shared)
    config_dir, content_dir = tmp_path / "config", tmp_path / "content"
    config_dir.mkdir()
    content_dir.mkdir()
    (config_dir / "account.yaml").write_text("verified: true\ntimezone: Asia/Shanghai\n")
    (config_dir / "push.yaml").write_text(
        "limits:\n  per_day: 1\n  per_week: 3\n"
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: custom\n    items: 2\n"
    )
    for name, (title, date, tags, body) in ARTICLES.items():
        (content_dir / name).write_text(
            f"---\ntitle: {title}\ndate: {date}\ntags: {json.dumps(tags, ensure_ascii=False)}\n"
            f"---\n{body}\n", encoding="utf-8"
        )
    settings = Settings(config_dir=config_dir, content_dir=content_dir)
    api_app = create_api(settings, log_path=tmp_path / "deliveries.jsonl")
    server = BackgroundServer(api_app).start()
    settings = Settings(config_dir=config_dir, content_dir=content_dir, api_base=server.url)
    setup = Services(settings, load_config(config_dir), r, api=WeChatApi.from_settings(settings, r))
    world = World(r, shared, setup, api_app.extensions["sim.platform"], tmp_path)
    yield world
    server.stop()
    clock.reset()


class World:
    def __init__(self, r, shared, setup, platform, folder):
        self.r, self.clock, self.setup, self.platform, self.folder = (
            r, shared, setup, platform, folder
        )

    @property
    def daily(self):
        """The world's daily digest."""
        return self.setup.config.push.digest("daily")

    def follower(self, name: str, message: bool = True) -> str:
        openid = f"o{name}"
        subscribers.on_follow(self.r, openid)
        self.platform.record(openid, "follow", name)
        if message:
            self.ask(openid)
        return openid

    def ask(self, openid: str) -> None:
        subscribers.on_activity(self.r, openid, "message")
        self.platform.record(openid, "message")

    def run(self, when: float | None = None) -> tuple[str, dict[str, int]]:
        slot = runs.last_slot(self.daily, "Asia/Shanghai", when or clock.now())
        run = runs.run_id("daily", slot)
        chunks: list[list[str]] = []
        runs.plan(self.setup, run, lambda i, openids: chunks.append(openids))
        counts: dict[str, int] = {}
        for openids in chunks:
            for reason, n in runs.process_chunk(self.setup, run, openids).items():
                counts[reason] = counts.get(reason, 0) + n
        return run, counts

    def delivered(self, openid: str | None = None) -> list[dict]:
        return [e for e in self.platform.log.since(0) if openid is None or e["openid"] == openid]

    def ledger(self, run: str) -> dict[str, str]:
        return {o: v.split("|")[0] for o, v in self.r.hgetall(Keys.push_ledger(run)).items()}


def test_the_server_clock_follows_the_shared_virtual_clock(world):
    assert abs(server_now(world.r) - clock.now()) < 1
    world.clock.advance(86400)
    assert abs(server_now(world.r) - clock.now()) < 1


def test_a_subscriber_in_the_window_gets_one_digest_and_no_second_that_day(world):
    openid = world.follower("alice")
    world.clock.advance(3600 + 60)  # 09:01
    run, counts = world.run()
    assert counts == {"sent": 1}
    sent = world.delivered(openid)
    assert len(sent) == 1 and "产品设计" in sent[0]["content"] and "退订" in sent[0]["content"]
    assert world.run() == (run, {})  # planned once per slot
    assert runs.process_chunk(world.setup, run, [openid]) == {"already-decided": 1}
    world.clock.advance(24 * 3600 - 30)  # tomorrow's 09:00 slot, 23:59:30 after the digest
    world.ask(openid)
    (world.folder / "content" / "new.md").write_text(
        "---\ntitle: 新文章\ndate: 2030-01-07\n---\n新的。\n", encoding="utf-8"
    )
    assert world.run()[1] == {"skipped-cap": 1}
    assert world.delivered(openid) == sent


def test_the_weekly_cap_is_a_sliding_log(world):
    openid = world.follower("bob")
    sent_days = []
    for day in range(5):
        world.ask(openid)
        (world.folder / "content" / f"new{day}.md").write_text(
            f"---\ntitle: 第{day}篇\ndate: 2030-01-{6 + day:02d}\n---\n新的文章 {day}。\n",
            encoding="utf-8",
        )
        world.clock.advance(3600 + 60 if day == 0 else 86400)
        _, counts = world.run()
        if counts.get("sent"):
            sent_days.append(day)
        else:
            assert counts == {"skipped-cap": 1}
    assert sent_days == [0, 1, 2]


def test_quiet_hours_defer_to_the_subscribers_morning(world):
    openid = world.follower("carol")
    world.r.hset(Keys.user(openid), "tz", "Europe/London")
    world.clock.advance(3600 + 60)  # 09:01 Shanghai = 01:01 London
    run, counts = world.run()
    assert counts == {"deferred-quiet": 1}
    assert not world.delivered(openid)
    due = world.r.zscore(Keys.push_due(), openid)
    assert due == at("2030-01-06T08:00:00", ZoneInfo("Europe/London"))
    world.clock.advance(due - clock.now() - 60)
    assert runs.sweep(world.setup) == {}
    world.clock.advance(120)
    assert runs.sweep(world.setup) == {"sent": 1}
    assert len(world.delivered(openid)) == 1
    assert world.ledger(run)[openid] == "sent"
    assert not world.r.exists(Keys.push_pending(openid))


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (lambda w, o: w.r.hset(Keys.user(o), "digests", "off"), "skipped-optout"),
        (lambda w, o: subscribers.on_unfollow(w.r, o), None),
        (lambda w, o: w.r.hset(Keys.user(o), "last_msg", clock.now() - 49 * 3600),
         "skipped-window"),
        (lambda w, o: w.r.hset(Keys.user(o), "last_seen", clock.now() - 91 * 86400),
         "skipped-inactive"),
        (lambda w, o: subscribers.learn(w.r, o, ["量子"]), "skipped-irrelevant"),
        (lambda w, o: [throttle_module.record_cs_send(w.r, o) for _ in range(4)], "skipped-window"),
    ],
    ids=["optout", "unsubscribed", "window", "inactive", "irrelevant", "last-slot"],
)
def test_who_gets_nothing_and_why(world, prepare, reason):
    openid = world.follower("dan")
    world.clock.advance(3600 + 60)
    prepare(world, openid)
    run, counts = world.run()
    assert not world.delivered(openid)
    if reason is None:  # unsubscribed: no longer a member, so not even asked about
        assert counts == {} and openid not in world.ledger(run)
    else:
        assert counts == {reason: 1}
        assert world.ledger(run)[openid] == reason


def test_interests_rank_the_articles(world):
    openid = world.follower("erin")
    subscribers.learn(world.r, openid, ["search"])
    world.clock.advance(3600 + 60)
    world.run()
    content = world.delivered(openid)[0]["content"]
    assert "How search works" in content and "产品设计" not in content


def test_a_reservation_left_by_a_crash_becomes_unknown_and_is_never_resent(world):
    openid = world.follower("frank")
    world.clock.advance(3600 + 60)
    slot = runs.last_slot(world.daily, "Asia/Shanghai", clock.now())
    run = runs.run_id("daily", slot)
    throttle = Throttle(world.r, run, "daily", "custom", world.setup.config.push.limits, "d")
    [decision] = throttle.decide([Candidate(openid, True)])  # the worker dies after this
    assert decision.reason == "reserved"
    assert runs.process_chunk(world.setup, run, [openid]) == {"already-decided": 1}  # leased
    world.clock.advance(61)
    assert runs.reconcile(world.setup, run) == {"unknown": 1}
    assert not world.delivered(openid)
    assert world.ledger(run)[openid] == "unknown"
    assert len(logged_sends(world.r, openid)) == 1  # counted against the caps as if sent


def test_a_refusal_drops_the_send_and_gives_the_slot_back(world):
    openid = world.follower("gina")
    world.platform.record(openid, "block")
    world.clock.advance(3600 + 60)
    run, counts = world.run()
    assert counts == {"failed-api": 1}
    assert world.r.hget(Keys.push_ledger(run), openid).endswith("|48002")
    assert len(logged_sends(world.r, openid)) == 0
    assert logged_sends(world.r, openid, "cs") == {}


def test_the_account_cap_counts_every_send(world):
    limits = world.setup.config.push.limits
    for name in ("h1", "h2", "h3"):
        world.follower(name)
    world.clock.advance(3600 + 60)
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai",
                                               clock.now()))
    throttle = Throttle(world.r, run, "daily", "custom",
                        limits.model_copy(update={"account_daily": 2}), "d")
    reasons = [d.reason for d in throttle.decide([Candidate(f"o{n}", True)
                                                  for n in ("h1", "h2", "h3")])]
    assert reasons == ["reserved", "reserved", "skipped-account-cap"]


def test_planning_chunks_everyone_once(world):
    for n in range(12):
        subscribers.on_follow(world.r, f"o{n:03d}")
    chunks: list[list[str]] = []
    run = runs.run_id("daily", clock.now() + 10)
    count = runs.plan(world.setup, run, lambda i, o: chunks.append(o))
    flat = [o for chunk in chunks for o in chunk]
    assert count == len(chunks) and sorted(flat) == sorted(set(flat)) and len(flat) == 12
    assert runs.plan(world.setup, run, lambda i, o: chunks.append(o)) == count
    assert len(chunks) == count  # planned once


def test_quiet_intervals_cross_midnight():
    hour = int(at("2030-01-06T12:00") // 3600)
    [_, today, _] = runs.quiet_intervals("Asia/Shanghai", "22-8", hour)
    assert today == (at("2030-01-06T22:00"), at("2030-01-07T08:00"))
    assert runs.quiet_intervals("Asia/Shanghai", "off", 0) == ()


def test_a_mass_digest_reaches_the_relevant_in_one_call(world):
    folder = world.folder / "config"
    (folder / "account.yaml").write_text("type: service\nverified: true\ntimezone: Asia/Shanghai\n")
    (folder / "push.yaml").write_text(
        "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: mass\n    items: 2\n"
    )
    world.platform.account_type = "service"
    world.setup = Services(world.setup.settings, load_config(folder), world.r, api=world.setup.api)
    openids = [world.follower(name, message=False) for name in ("m1", "m2", "m3")]
    subscribers.learn(world.r, openids[2], ["量子"])  # nothing for this one
    world.clock.advance(3600 + 60)
    run, counts = world.run()
    assert counts == {"sent": 2, "skipped-irrelevant": 1}
    sent = world.delivered()
    assert sorted(e["openid"] for e in sent) == sorted(openids[:2])
    assert {e["api"] for e in sent} == {"mass"}
    assert len(logged_sends(world.r, openids[0], "mass")) == 1


def test_the_caps_count_from_when_the_send_was_settled_not_reserved(world):
    openid = world.follower("ivan")
    world.clock.advance(3600 + 60)
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai",
                                               clock.now()))
    throttle = Throttle(world.r, run, "daily", "custom", world.setup.config.push.limits, "d")
    [decision] = throttle.decide([Candidate(openid, True)])
    world.clock.advance(600)  # a long chunk: this send leaves ten minutes after its reservation
    assert throttle.settle([(decision, "sent", "")]) == ["sent"]
    assert logged_sends(world.r, openid)[run] == pytest.approx(clock.now(), abs=1)
    group = f"{run}|{decision.reserved.split('|')[1]}"  # the sends that throttle call reserved
    assert world.r.zscore(Keys.push_account(), group) == pytest.approx(clock.now(), abs=1)
    assert world.r.hget(Keys.push_account_counts(), group) == "1"


def test_the_account_cap_is_exact_over_groups_and_gives_back_failed_sends(world):
    """Three sends allowed a day: a failed one gives its slot back, and the cap holds 24 h."""
    limits = world.setup.config.push.limits.model_copy(update={"account_daily": 3})
    people = [world.follower(name) for name in ("ann", "bob", "cid", "dan", "eve")]
    world.clock.advance(3600 + 60)

    def decide(run: str, openids: list[str]) -> tuple[Throttle, list]:
        throttle = Throttle(world.r, run, "daily", "custom", limits, "d")
        return throttle, throttle.decide([Candidate(o, True) for o in openids])

    throttle, first = decide("daily@1", people[:2])
    assert [d.reason for d in first] == ["reserved", "reserved"]
    assert 0 < world.r.ttl(Keys.push_ledger("daily@1")) <= RUN_TTL
    throttle.settle([(first[0], "sent", ""), (first[1], "failed-api", "45015")])
    world.clock.advance(60)
    _, second = decide("daily@2", people[2:])
    assert [d.reason for d in second] == ["reserved", "reserved", "skipped-account-cap"]
    world.clock.advance(86400 - 90)  # the first group is still inside the 24 h
    _, third = decide("daily@3", people[4:])
    assert [d.reason for d in third] == ["skipped-account-cap"]
    world.clock.advance(60)  # now only the second group (2 sends) counts
    _, fourth = decide("daily@4", people[4:])
    assert [d.reason for d in fourth] == ["reserved"]


def test_a_run_on_bot_clock_puts_the_throttle_on_its_virtual_time(world, monkeypatch):
    virtual = world.clock.now() + 5 * 86400
    monkeypatch.setenv(clock.ENV, clock.share(virtual, speed=60))
    clock.install_from_env()
    run = runs.run_id("daily", virtual)
    throttle = Throttle(world.r, run, "daily", "custom", world.setup.config.push.limits, "d")
    [decision] = throttle.decide([Candidate("onobody", True)])
    assert decision.reason == "skipped-unsubscribed"
    assert decision.at == pytest.approx(clock.now(), abs=60)


def test_an_openid_given_twice_in_one_batch_is_reserved_once(world):
    openid = world.follower("jon")
    world.clock.advance(3600 + 60)
    throttle = Throttle(world.r, "daily@9", "daily", "custom", world.setup.config.push.limits, "d")
    first, again = throttle.decide([Candidate(openid, True), Candidate(openid, True)])
    assert (first.reason, first.fresh) == ("reserved", True)
    assert (again.reason, again.fresh) == ("reserved", False)
    assert len(logged_sends(world.r, openid)) == 1
    assert throttle.settle([(first, "sent", ""), (again, "sent", "")]) == ["sent", "sent"]
    assert world.r.hget(Keys.push_ledger("daily@9"), openid).startswith("sent|")


def test_pruning_drops_log_entries_past_their_window_and_empty_logs(world):
    """The logs of a subscriber no digest reaches any more do not stay forever."""
    openids = [world.follower("kim"), world.follower("lou")]
    world.clock.advance(3600 + 60)
    run, _ = world.run()
    assert all(set(logged_sends(world.r, o)) == {run} for o in openids)
    assert all(set(logged_sends(world.r, o, "cs")) == {run} for o in openids)
    world.clock.advance(6 * 86400)
    assert throttle_module.prune_logs(world.r) == 4  # both logs of both
    assert all(world.r.hexists(Keys.push_logs(), o) for o in openids)  # within the week: kept
    assert world.r.hlen(Keys.push_cs_logs()) == 0  # past the 48 h window: gone
    world.clock.advance(86400 + 60)
    assert throttle_module.prune_logs(world.r) == 2
    assert world.r.hlen(Keys.push_logs()) == 0


def test_a_digest_moves_only_its_own_cursor_past_what_it_sent(world):
    openid = world.follower("max")
    world.r.hset(Keys.push_cursors(), openid, "weekly 1000.000")
    world.clock.advance(3600 + 60)
    run, counts = world.run()
    assert counts == {"sent": 1}
    reserved = float(world.r.hget(Keys.push_ledger(run), openid).split("|")[1])
    assert throttle_module.log_entries(world.r.hget(Keys.push_cursors(), openid)) == {
        "weekly": 1000.0, "daily": pytest.approx(reserved, abs=0.001)
    }
    world.clock.advance(86400)  # tomorrow: nothing published since, nothing relevant
    world.ask(openid)
    assert world.run()[1] == {"skipped-irrelevant": 1}


def test_a_send_settled_after_an_unfollow_puts_no_personal_data_back(world):
    """The API call was in flight when they unfollowed: the purge stays a purge."""
    openid = world.follower("ned")
    world.clock.advance(3600 + 60)
    slot = runs.last_slot(world.daily, "Asia/Shanghai", clock.now())
    throttle = Throttle(world.r, runs.run_id("daily", slot), "daily", "custom",
                        world.setup.config.push.limits, "d")
    [decision] = throttle.decide([Candidate(openid, True)])
    assert decision.reason == "reserved" and logged_sends(world.r, openid, "cs")
    subscribers.on_unfollow(world.r, openid)
    assert throttle.settle([(decision, "sent", "")]) == ["sent"]
    assert not any(world.r.hexists(key, openid) for key in Keys.personal_fields())
    assert len(logged_sends(world.r, openid)) == 1  # the caps still count it



def test_a_batch_longer_than_one_call_of_arguments_is_decided_and_settled_whole(world):
    """Batches go to Redis 1000 arguments at a time (batch.lua's in_parts): none is lost."""
    openids = [f"o{i:04d}" for i in range(1203)]
    for openid in openids:
        subscribers.on_follow(world.r, openid)
        subscribers.on_activity(world.r, openid, "message")
    world.clock.advance(3600 + 60)
    limits = world.setup.config.push.limits.model_copy(update={"account_daily": 5000})
    throttle = Throttle(world.r, "daily@1", "daily", "custom", limits, "d")
    decisions = throttle.decide([Candidate(o, True) for o in openids])
    assert [d.reason for d in decisions] == ["reserved"] * len(openids)
    assert throttle.settle([(d, "sent", "") for d in decisions]) == ["sent"] * len(openids)
    for key in (Keys.push_logs(), Keys.push_cs_logs(), Keys.push_cursors()):
        assert world.r.hlen(key) == len(openids)
    assert world.r.hvals(Keys.push_ledger("daily@1")) == [
        d.reserved.replace("reserved", "sent") for d in decisions
    ]


def test_a_stop_during_the_chunk_stops_the_digest_not_yet_sent(world, monkeypatch):
    """Decided for both, then Bob says 退订 while Alice's digest is on its way, his not claimed
    yet (a slow API: one send per group): his is not sent."""
    from bot.push import inflight

    monkeypatch.setattr(inflight, "group_size", lambda seconds_per_send: 1)
    alice, bob = world.follower("alice"), world.follower("bob")
    world.clock.advance(3600 + 60)
    send = world.setup.api.send_text
    order: list[str] = []

    def send_and_bob_stops(openid: str, text: str) -> None:
        if openid == alice:
            assert world.r.hget(Keys.push_sending(), alice)  # in flight while the call is
            order.append("stop " + subscribers.answer_command(
                world.r, bob, ("stop", "zh", ""), world.setup.config))
        send(openid, text)
        order.append(f"sent {openid}")

    monkeypatch.setattr(world.setup.api, "send_text", send_and_bob_stops)
    run, counts = world.run()
    assert counts == {"sent": 1, "skipped-optout": 1}
    assert [e["openid"] for e in world.delivered() if e["api"] == "custom"] == [alice]
    assert world.ledger(run)[bob] == "skipped-optout"
    assert world.r.hlen(Keys.push_sending()) == 0  # nothing left in flight
    assert order[0].startswith("stop 已退订")


def test_a_stop_during_a_claimed_group_is_confirmed_after_that_digest(world, monkeypatch):
    """Alice and Bob are claimed together (a fast API); Bob says 退订 while Alice's digest is on
    its way: his was claimed already, so it goes, and the stop is confirmed only after it."""
    import threading
    import time

    alice, bob = world.follower("alice"), world.follower("bob")
    world.clock.advance(3600 + 60)
    send = world.setup.api.send_text
    confirmed: list[float] = []
    sent: dict[str, float] = {}

    def stop_bob() -> None:
        subscribers.answer_command(world.r, bob, ("stop", "zh", ""), world.setup.config)
        confirmed.append(time.monotonic())

    stopper = threading.Thread(target=stop_bob)

    def send_and_bob_stops(openid: str, text: str) -> None:
        if openid == alice:
            stopper.start()
            time.sleep(0.2)
        send(openid, text)
        sent[openid] = time.monotonic()

    monkeypatch.setattr(world.setup.api, "send_text", send_and_bob_stops)
    run, counts = world.run()
    stopper.join(timeout=10)
    assert counts == {"sent": 2}
    assert confirmed and confirmed[0] > sent[bob]  # no digest after the confirmed stop
    assert world.r.hlen(Keys.push_sending()) == 0


def test_a_claim_the_replicas_do_not_hold_sends_nothing(world, monkeypatch):
    """A primary cut off from its replicas (a split brain) answers a claim from data a stop may
    never have reached: nothing is sent on it, the sends wait for a retry."""
    from bot import state

    world.follower("alice"), world.follower("bob")
    world.clock.advance(3600 + 60)
    waited: list[int] = []

    def cut_off(client, since: int) -> None:  # noqa: ANN001
        waited.append(client.hlen(Keys.push_sending()))
        raise state.NotDurable("0 of 1 replicas acknowledged")

    monkeypatch.setattr(state, "durable", cut_off)
    run = runs.run_id("daily", runs.last_slot(world.daily, "Asia/Shanghai", clock.now()))
    chunks: list[list[str]] = []
    runs.plan(world.setup, run, lambda i, openids: chunks.append(openids))
    with pytest.raises(runs.RetryLater):
        runs.process_chunk(world.setup, run, chunks[0], final_attempt=False)
    assert waited == [2]  # after the claim, before any call
    assert world.delivered() == []
    assert set(world.ledger(run).values()) == {"retry"}
    assert world.r.hlen(Keys.push_sending()) == 0


def test_a_stop_waits_for_the_digest_already_on_its_way(world):
    import threading
    import time

    from bot.push import inflight

    alice = world.follower("alice")
    assert inflight.claim(world.r, [alice], "daily@1") == ["go"]  # the API call starts
    confirmed: list[float] = []
    stopper = threading.Thread(target=lambda: confirmed.append(
        (subscribers.answer_command(world.r, alice, ("stop", "zh", ""), world.setup.config),
         time.monotonic())[1]))
    stopper.start()
    time.sleep(0.3)
    assert confirmed == []  # not confirmed while the digest is in flight
    ended = time.monotonic()
    inflight.release(world.r, [alice])  # the call returned
    stopper.join(timeout=5)
    assert confirmed and confirmed[0] >= ended
    assert inflight.claim(world.r, [alice], "daily@1") == ["skipped-optout"]

"""A real failover (bot/state/replicated.py: redis-server primary, replicas, three sentinels):
clients ride through it, and what :func:`bot.state.durable` acknowledged survives it.

Also, without real servers: the writes that must survive wait for a replica, and reservations no
replica acknowledged are given back, not sent on.
"""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest
from redis.backoff import NoBackoff

from bot import state, subscribers
from bot.simulator.wire import build_message
from bot.state import Keys, NotDurable, connection
from bot.state.replicated import Topology

ALICE = "oAlice000000000000000000000"


@pytest.fixture
def topology(tmp_path):
    with Topology(tmp_path / "redis", replicas=2) as running:
        yield running


@pytest.mark.redis_server
@pytest.mark.slow
def test_writes_ride_through_a_failover_and_none_acknowledged_is_lost(topology):
    client = state.connect(topology.url)
    acknowledged: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            try:
                since = state.epoch(client)
                client.rpush("log", i)
                state.durable(client, since)
                acknowledged.append(i)
            except NotDurable:
                pass  # not acknowledged: the caller would not act on it
            except Exception as exc:  # noqa: BLE001 - the test reports whatever escaped
                errors.append(exc)
                return
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.5)
    before = len(acknowledged)
    old = topology.kill_primary()
    killed = time.monotonic()
    new = topology.wait_for_failover(old)
    promoted = time.monotonic() - killed
    # back as a replica, as a supervisor does: the sentinels sometimes take 20 s or more to
    # re-point the other replica, and durable() waits for one
    topology.restart(old)
    deadline = time.monotonic() + 60
    while len(acknowledged) < before + 200 and time.monotonic() < deadline and not errors:
        time.sleep(0.05)
    stop.set()
    writer.join(timeout=30)
    assert errors == [], errors
    assert len(acknowledged) >= before + 200, "writes did not resume on the new primary"
    kept = {int(v) for v in new.client().lrange("log", 0, -1)}
    assert set(acknowledged) <= kept, sorted(set(acknowledged) - kept)[:10]
    assert promoted < 15


@pytest.mark.redis_server
@pytest.mark.slow
def test_writes_across_a_failover_are_not_vouched_for(topology):
    """Writes made, then a failover, then the WAIT: the new primary acknowledges what it has,
    which need not be those writes; durable() says so instead of vouching for them."""
    client = state.connect(topology.url)
    client.set("warm", "1")
    since = state.epoch(client)
    client.rpush("log", "made before the failover")
    old = topology.kill_primary()
    topology.wait_for_failover(old)
    client.rpush("log", "made after it")  # through the new primary
    with pytest.raises(NotDurable, match="moved"):
        state.durable(client, since)
    topology.restart(old)  # a replica again, as a supervisor does
    for _ in range(20):  # a replica follows the new primary within seconds
        since = state.epoch(client)
        client.rpush("log", "made on the new primary")
        try:
            state.durable(client, since)
            break
        except NotDurable as exc:
            assert "moved" not in str(exc)
    else:
        pytest.fail("no write on the new primary was acknowledged")


class _Interrupted(Exception):
    pass


@pytest.mark.redis_server
@pytest.mark.slow
def test_a_read_interrupted_by_an_exception_drops_its_connection(topology):
    """A signal handler that raises mid-read (RQ's stop, a job's timeout) must not leave the
    reply to come on a connection the pool hands out again: the next command would read it."""
    import signal

    client = state.connect(topology.url)
    client.set("k", "v")

    def interrupt(signum, frame) -> None:  # noqa: ANN001
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with pytest.raises(_Interrupted):
            client.blpop(["nothing"], timeout=1)  # its reply (nil) comes after a second
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(1.2)
    assert client.set("k", "w") is True
    assert client.get("k") == "w"


@pytest.mark.redis_server
def test_durable_is_free_without_replicas(real_redis):
    real_redis.set("x", "1")
    started = time.monotonic()
    state.durable(real_redis, state.epoch(real_redis))  # the embedded server: nothing to wait
    # for (WAIT would block)
    assert time.monotonic() - started < 0.1


class Replicas:
    """A fake Redis that says it is replicated, with replicas that acknowledge or not."""

    def __init__(self, monkeypatch, acknowledge: bool) -> None:
        self.r = fakeredis.FakeRedis(decode_responses=True)
        self.waits = 0
        self.asked: list[int] = []

        def wait(replicas: int, timeout: int) -> int:
            self.waits += 1
            self.asked.append(replicas)
            return replicas if acknowledge else 0

        def acknowledged(client) -> tuple[int, int]:  # noqa: ANN001 - the fake
            return wait(2, 1000), 2  # two replicas connected

        self.wait = wait
        monkeypatch.setattr("bot.state.connection._acknowledged", acknowledged)
        monkeypatch.setattr("bot.state.connection.replicated", lambda client: True)


def test_an_opt_out_and_an_unfollow_wait_for_a_replica(monkeypatch, config):
    fake = Replicas(monkeypatch, acknowledge=True)
    subscribers.on_follow(fake.r, ALICE)
    subscribers.answer_command(fake.r, ALICE, ("stop", "zh", ""), config)
    subscribers.on_unfollow(fake.r, ALICE)
    assert fake.asked == [2, 2]  # every connected replica: any of them may be promoted


def test_a_stop_no_replica_holds_is_not_confirmed(monkeypatch, config):
    fake = Replicas(monkeypatch, acknowledge=False)
    subscribers.on_follow(fake.r, ALICE)
    with pytest.raises(NotDurable):
        subscribers.answer_command(fake.r, ALICE, ("stop", "zh", ""), config)


def test_an_unfollow_is_purged_again_until_the_replicas_hold_it(monkeypatch):
    """Nobody can be asked to unfollow again: the purge is made again, on whichever primary is
    current, until it is vouched for (a split brain's old primary woke, a replica not back)."""
    fake = Replicas(monkeypatch, acknowledge=True)
    monkeypatch.setattr(connection.DURABLY_RETRY, "_backoff", NoBackoff())
    answers = iter([(0, 2), (1, 2), (2, 2)])
    monkeypatch.setattr(connection, "_acknowledged", lambda client: next(answers))
    subscribers.on_follow(fake.r, ALICE)
    purges = []
    original = subscribers._purge
    monkeypatch.setattr(subscribers, "_purge", lambda pipe, openid: (
        purges.append(openid), original(pipe, openid)))
    subscribers.on_unfollow(fake.r, ALICE)
    assert purges == [ALICE] * 3  # made again after each refusal
    assert not fake.r.exists(Keys.user(ALICE)) and fake.r.exists(Keys.gone(ALICE))


def test_an_unfollow_never_vouched_for_is_logged_not_apologised_for(
    monkeypatch, wechat, caplog
):
    monkeypatch.setattr(connection, "replicated", lambda client: True)
    monkeypatch.setattr(connection, "_acknowledged", lambda client: (0, 1))
    monkeypatch.setattr(connection.DURABLY_RETRY, "_retries", 1)
    monkeypatch.setattr(connection.DURABLY_RETRY, "_backoff", NoBackoff())
    unfollow = build_message("event", ALICE, Event="unsubscribe")
    with caplog.at_level("ERROR"):
        assert wechat.reply(unfollow, ALICE).kind == "none"  # no apology: nobody would read it
    assert f"unfollow of {ALICE} not vouched for" in caplog.text


def test_reservations_no_replica_holds_are_given_back(monkeypatch, config):
    from bot.push.throttle import Candidate, Throttle

    fake = Replicas(monkeypatch, acknowledge=False)
    subscribers.on_follow(fake.r, ALICE)
    throttle = Throttle(fake.r, "daily@1", "daily", "custom", config.push.limits, "2026-12-02")
    subscribers.on_activity(fake.r, ALICE, "message")
    with pytest.raises(NotDurable):
        throttle.decide([Candidate(ALICE, True)])
    ledger = fake.r.hget(Keys.push_ledger("daily@1"), ALICE)
    assert ledger.startswith("retry|") and ledger.endswith("|not-replicated")
    fake.waits = 0
    monkeypatch.setattr("bot.state.connection._acknowledged", lambda client: (2, 2))
    decided = throttle.decide([Candidate(ALICE, True)])  # the job's retry decides again
    assert [d.reason for d in decided] == ["reserved"]


@pytest.mark.redis_server
@pytest.mark.slow
def test_a_digest_run_through_a_failover_sends_nothing_twice_and_honours_every_stop():
    """bench/failover.py's trial, short: a few thousand subscribers, webhook traffic, one kill."""
    from bench.failover import trial

    figures = trial(2000, failovers=1, pause=False, workers=2, seed=3)
    assert figures.duplicates == 0
    assert figures.after_stop == 0, figures.after_stop_openids
    assert figures.stops_acknowledged > 0 and figures.questions_acknowledged > 0
    assert figures.questions_answered_twice == 0
    assert figures.reached >= 0.9 * (2000 - figures.stops_acknowledged)
    # a split first election is tried again after 2 x failover-timeout: 10 s more
    assert figures.to_first_write and figures.to_first_write[0] < 30

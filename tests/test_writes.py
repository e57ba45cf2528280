"""Deferred writes: recorded with redis-py's methods, sent as one script, failures logged."""

from __future__ import annotations

import logging

from bot.state.writes import Writes, unless_after


def test_a_batch_is_one_command_run_in_order(fake_redis, round_trips) -> None:
    fake_redis.ping()  # the connection is made
    round_trips[0] = 0
    batch = Writes()
    batch.hset("session", mapping={"question": "微信", "rest": "x"})
    batch.hdel("session", "rest")
    batch.expire("session", 600)
    for term in ("微信", "价值观", "微信"):
        batch.zincrby("interests", 1, term)
    batch.set("seen", "answer", ex=60)
    batch.delete("lock")
    assert batch.commands[0] == ("HSET", "session", "question", "微信", "rest", "x")
    batch.send(fake_redis)
    assert round_trips[0] <= 2  # EVALSHA, and EVAL the first time the server meets the script
    assert fake_redis.hgetall("session") == {"question": "微信"}
    assert 0 < fake_redis.ttl("session") <= 600 and 0 < fake_redis.ttl("seen") <= 60
    assert fake_redis.zscore("interests", "微信") == 2
    assert batch.commands == []
    round_trips[0] = 0
    batch.send(fake_redis)  # nothing recorded: nothing sent
    assert round_trips[0] == 0


def test_a_failing_command_is_logged_and_the_rest_still_run(fake_redis, caplog) -> None:
    fake_redis.set("session", "not a hash")
    batch = Writes()
    batch.hset("session", "question", "x")
    batch.set("seen", "answer")
    with caplog.at_level(logging.ERROR):
        batch.send(fake_redis)
    assert fake_redis.get("seen") == "answer"
    assert "HSET session" in caplog.text and "WRONGTYPE" in caplog.text


def test_a_server_that_forgot_the_script_gets_it_again(fake_redis) -> None:
    batch = Writes()
    batch.set("a", "1")
    batch.send(fake_redis)
    fake_redis.script_flush()
    batch.set("b", "2")
    batch.send(fake_redis)
    assert fake_redis.mget("a", "b") == ["1", "2"]


def test_commands_behind_a_fence_give_way_to_a_later_time(fake_redis) -> None:
    def send(at: float) -> None:
        batch = Writes(fence=("gone", at))
        batch.incr("fenced")
        batch.hset("also-fenced", "f", "v")
        batch.close_fence()
        batch.incr("open")  # recorded after the fence was closed
        batch.send(fake_redis)

    send(100.0)  # no time kept: everything runs
    fake_redis.set("gone", "150.5")
    send(100.0)  # the key's time is later: the fenced commands are skipped
    send(150.5)  # not later: they run
    assert fake_redis.get("fenced") == "2" and fake_redis.hget("also-fenced", "f") == "v"
    assert fake_redis.get("open") == "3"


def test_fences_nest_and_an_empty_one_adds_nothing(fake_redis) -> None:
    assert unless_after("gone", 1.0, []) == []
    fake_redis.set("gone", "50")
    inner = unless_after("gone", 10.0, [("INCR", "inner")])
    batch = Writes()
    batch.commands = [*unless_after("other", 10.0, [*inner, ("INCR", "outer")]), ("INCR", "after")]
    batch.send(fake_redis)
    assert (fake_redis.get("inner"), fake_redis.get("outer"), fake_redis.get("after")) == (
        None, "1", "1",
    )

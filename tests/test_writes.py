"""Deferred writes: recorded with redis-py's methods, sent as one script, failures logged."""

from __future__ import annotations

import logging

from bot.state.writes import Writes


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

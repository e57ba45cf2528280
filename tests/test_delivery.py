"""Retries and the deadline: each delivery processed once, answered in time or sent later.

Late answers on an account without the customer-service API (kept for a retry or the next
message) are driven through the webhook on a real Redis in ``test_late_reply.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot import clock, subscribers
from bot.clock import VirtualClock
from bot.config import Config
from bot.inbound import delivery
from bot.inbound.encoding import LATE_MARK, decode, encode
from bot.inbound.handlers import registry
from bot.inbound.kept import HELD
from bot.services import Services
from bot.simulator.wire import build_message
from bot.state import Keys
from bot.wechat.message import Inbound, Text
from tests.conftest import WeChat

OPENID = "oSlow000000000000000000000"


def verified(config: Config, deadline: float) -> Config:
    """``config`` for a verified account (it has the customer-service API), with ``deadline``."""
    return dataclasses.replace(
        config,
        account=config.account.model_copy(update={"verified": True}),
        webhook=config.webhook.model_copy(update={"deadline_seconds": deadline}),
    )


@pytest.fixture
def slow_handler(monkeypatch):
    """Make "slow N" questions take N seconds, counting the calls."""
    calls: list[str] = []
    original = registry.dispatch

    def dispatch(message: Inbound, context: Services):
        if message.content.startswith("slow "):
            calls.append(message.delivery_id)
            time.sleep(float(message.content.split()[1]))
            return Text(f"answer to {message.content}")
        return original(message, context)

    monkeypatch.setattr(registry, "dispatch", dispatch)
    return calls


def test_redelivery_is_answered_from_cache_without_processing(wechat: WeChat, slow_handler) -> None:
    xml = build_message("text", OPENID, Content="slow 0.01")
    first = wechat.reply(xml, OPENID)
    second = wechat.reply(xml, OPENID)
    assert first.text == second.text == "answer to slow 0.01"
    assert len(slow_handler) == 1


def test_retry_during_processing_waits_for_the_first_answer(wechat: WeChat, slow_handler) -> None:
    xml = build_message("text", OPENID, Content="slow 0.5")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(wechat.reply, xml, OPENID)
        time.sleep(0.1)
        retry = pool.submit(wechat.reply, xml, OPENID)
        assert first.result().text == retry.result().text == "answer to slow 0.5"
    assert len(slow_handler) == 1


def test_too_slow_answer_becomes_success_and_goes_late(
    make_app, config, slow_handler, fake_redis
) -> None:
    app = make_app(config_override=verified(config, 0.3))
    late: list[Inbound] = []
    app.extensions["bot.enqueue_late"] = lambda message, arrived: late.append(message)
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    xml = build_message("text", OPENID, Content="slow 1")
    started = time.monotonic()
    reply = wechat.reply(xml, OPENID)
    assert reply.kind == "none" and time.monotonic() - started < 0.9
    assert [m.content for m in late] == ["slow 1"]
    # a retry in the meantime is not processed again and gets success too
    assert wechat.reply(xml, OPENID).kind == "none"
    message = late[0]
    ready, _ = delivery.late_answer(fake_redis, message, app.extensions["bot.services"])
    assert not ready  # still being computed
    time.sleep(1.0)
    ready, answer = delivery.late_answer(fake_redis, message, app.extensions["bot.services"])
    assert ready and answer == Text("answer to slow 1")
    assert len(slow_handler) == 1


def test_late_answer_recomputed_when_its_process_died(app, fake_redis, slow_handler) -> None:
    context = app.extensions["bot.services"]
    message = Inbound(
        kind="text", openid=OPENID, account="gh", create_time=1, msg_id="9", content="slow 0"
    )
    # no stored answer and no lock: the web process is gone
    ready, answer = delivery.late_answer(fake_redis, message, context)
    assert ready and answer == Text("answer to slow 0")


def test_a_recomputed_late_answer_writes_nothing_for_who_unfollowed_since(
    app, fake_redis, monkeypatch
) -> None:
    def writing(message: Inbound, context: Services):
        with context.later() as batch:
            batch.set(Keys.session(message.openid), message.msg_id)
        return Text("recomputed")

    monkeypatch.setattr(registry, "dispatch", writing)
    context = app.extensions["bot.services"]
    fake_redis.set(Keys.gone(OPENID), "1790000100.0")  # they unfollowed at that time
    for msg_id, arrived in (("1", 1_790_000_050.0), ("2", 1_790_000_150.0)):
        message = Inbound(
            kind="text", openid=OPENID, account="gh", create_time=1, msg_id=msg_id, content="q"
        )
        assert delivery.late_answer(fake_redis, message, context, arrived) == (
            True, Text("recomputed"),
        )
        if msg_id == "1":  # arrived before the unfollow: its writes give way
            assert not fake_redis.exists(Keys.session(OPENID))
    assert fake_redis.get(Keys.session(OPENID)) == "2"  # arrived after it (followed again)


def test_handler_crash_gives_an_apology_not_a_500(wechat: WeChat, monkeypatch, caplog) -> None:
    def explode(message, context):
        raise RuntimeError("boom")

    monkeypatch.setattr(registry, "dispatch", explode)
    reply = wechat.ask("anything")
    assert reply.text == delivery.APOLOGY.content
    assert "boom" in caplog.text


def test_dedup_keys_expire(wechat: WeChat, fake_redis, config) -> None:
    xml = build_message("text", OPENID, Content="微信", msg_id=777)
    wechat.reply(xml, OPENID)
    ttl = fake_redis.ttl(Keys.seen(OPENID, "m777"))
    assert 0 < ttl <= config.webhook.dedup_ttl_seconds
    assert not fake_redis.exists(Keys.lock(OPENID, "m777"))


def test_events_dedup_by_create_time_event_and_key(wechat: WeChat, fake_redis) -> None:
    click = build_message("event", OPENID, create_time=123, Event="CLICK", EventKey="ABOUT")
    wechat.reply(click, OPENID)
    assert fake_redis.exists(Keys.seen(OPENID, "e123:click:ABOUT"))


def test_threads_do_not_leak(wechat: WeChat) -> None:
    before = threading.active_count()
    for i in range(20):
        wechat.ask(f"微信 {i}")
    assert threading.active_count() <= before + 16


def test_a_question_costs_two_round_trips(wechat: WeChat, fake_redis, round_trips) -> None:
    wechat.ask("微信", OPENID)  # connections made, the claim script loaded
    round_trips[0] = 0
    reply = wechat.ask("微信公众平台的价值观是什么", OPENID)
    assert reply.kind == "text"
    assert round_trips[0] == 2  # the claim with the activity; the session, interests and answer
    assert fake_redis.hget(Keys.session(OPENID), "question") == "微信公众平台的价值观是什么"
    assert fake_redis.zcard(Keys.push_interests(OPENID)) > 0


def test_only_the_claim_records_activity(wechat: WeChat, fake_redis) -> None:
    clock.install(VirtualClock(start=1_790_000_000, speed=0))
    xml = build_message("text", OPENID, Content="微信")
    first = wechat.reply(xml, OPENID)
    user = Keys.user(OPENID)
    assert float(fake_redis.hget(user, "last_msg")) == 1_790_000_000
    clock.install(VirtualClock(start=1_790_000_009, speed=0))  # WeChat retries seconds later
    assert wechat.reply(xml, OPENID).text == first.text
    assert float(fake_redis.hget(user, "last_msg")) == 1_790_000_000


def test_claim_answers_once_and_makes_its_commands_once(fake_redis) -> None:
    seen = Keys.seen(OPENID, "m1")
    commands = [("HINCRBY", "counter", "claims", "1")]
    assert delivery.claim(fake_redis, OPENID, "m1", 60, commands) == delivery.Claim(mine=True)
    assert delivery.claim(fake_redis, OPENID, "m1", 60, commands) == delivery.Claim()  # held
    fake_redis.set(seen, encode(Text("done")))
    assert delivery.claim(fake_redis, OPENID, "m1", 60, commands) == delivery.Claim(
        answer=encode(Text("done"))
    )
    assert fake_redis.hget("counter", "claims") == "1"
    fake_redis.script_flush()  # a restarted server forgot the script: it is sent again
    assert delivery.claim(fake_redis, OPENID, "m2", 60, commands) == delivery.Claim(mine=True)


def test_claim_gives_a_kept_answer_to_one_retry_and_says_when_answers_are_kept(
    fake_redis,
) -> None:
    kept, answer = Keys.kept(OPENID), encode(Text("kept"))
    fake_redis.hset(kept, "m1", "{}")
    fake_redis.set(Keys.seen(OPENID, "m1"), HELD + answer, ex=300)
    first = delivery.claim(fake_redis, OPENID, "m1", 60, [])
    assert first == delivery.Claim(answer=answer, redeemed=True)
    assert not fake_redis.exists(kept)  # the next message will not give it again
    assert delivery.claim(fake_redis, OPENID, "m1", 60, []) == delivery.Claim(answer=answer)
    assert 0 < fake_redis.ttl(Keys.seen(OPENID, "m1")) <= 300

    # taken by another message first: the retry says nothing
    fake_redis.set(Keys.seen(OPENID, "m2"), HELD + answer, ex=300)
    assert delivery.claim(fake_redis, OPENID, "m2", 60, []) == delivery.Claim(
        answer=LATE_MARK
    )
    fake_redis.hset(kept, "m9", "{}")
    assert delivery.claim(fake_redis, OPENID, "m3", 60, []) == delivery.Claim(mine=True, kept=True)


def test_a_late_answer_keeps_the_writes_its_handler_deferred(
    make_app, config, monkeypatch, fake_redis
) -> None:
    def slow(message: Inbound, context: Services):
        time.sleep(0.6)
        with context.later() as pipe:
            pipe.set("written-by-the-handler", "1")
        return Text("late")

    monkeypatch.setattr(registry, "dispatch", slow)
    app = make_app(config_override=verified(config, 0.2))
    app.extensions["bot.enqueue_late"] = lambda message, arrived: None
    wechat = WeChat(app.test_client(), app.extensions["bot.services"].settings)
    xml = build_message("text", OPENID, Content="slow", msg_id=4242)
    assert wechat.reply(xml, OPENID).kind == "none"
    deadline = time.monotonic() + 3
    while not fake_redis.exists(Keys.late(OPENID, "m4242")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_redis.get("written-by-the-handler") == "1"
    assert decode(fake_redis.get(Keys.late(OPENID, "m4242"))) == Text("late")
    assert not fake_redis.exists(Keys.lock(OPENID, "m4242"))


def test_a_failing_activity_write_is_logged_and_the_question_answered(
    wechat: WeChat, fake_redis, caplog
) -> None:
    fake_redis.set(Keys.user(OPENID), "not a hash")
    with caplog.at_level(logging.ERROR):
        reply = wechat.ask("微信", OPENID)
    assert reply.kind == "text"
    assert "WRONGTYPE" in caplog.text


def test_a_question_handled_after_its_sender_unfollowed_leaves_nothing(
    wechat: WeChat, fake_redis, monkeypatch
) -> None:
    """The question arrives, its handler is held up (a failover, a slow search) while the sender
    unfollows; the handler's writes then land: they must not re-create the purged subscriber."""
    wechat.ask("微信", OPENID)
    assert fake_redis.hget(Keys.user(OPENID), "subscribed") == "1"
    release = threading.Event()
    original = registry.dispatch

    def held(message: Inbound, context: Services):
        if message.content == "held":
            release.wait(5)
            subscribers.learn(context.writes, message.openid, ["held"], "en")
            with context.later() as batch:
                batch.set(Keys.session(message.openid), "held")
        return original(message, context)

    monkeypatch.setattr(registry, "dispatch", held)
    with ThreadPoolExecutor(1) as pool:
        question = pool.submit(wechat.ask, "held", OPENID)
        time.sleep(0.2)
        unfollow = build_message("event", OPENID, Event="unsubscribe")
        assert wechat.reply(unfollow, OPENID).kind == "none"
        assert not fake_redis.exists(Keys.user(OPENID))
        release.set()
        question.result()
    assert not any(fake_redis.exists(key) for key in Keys.personal(OPENID))
    assert fake_redis.zscore(Keys.push_members(), OPENID) is None

    follow = build_message("event", OPENID, Event="subscribe")
    wechat.reply(follow, OPENID)  # following again works as ever
    wechat.ask("微信", OPENID)
    assert fake_redis.hget(Keys.user(OPENID), "subscribed") == "1"
    assert fake_redis.zcard(Keys.push_interests(OPENID)) > 0

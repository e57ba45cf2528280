"""The question log (bot/unanswered.py): what it keeps, for how long, and that unfollowing or
忘记我 erases a subscriber from it; with the daily counts (bot/tally.py) it feeds the console."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from bot import clock, tally, unanswered
from bot.clock import VirtualClock
from bot.state import Keys
from bot.state.writes import Writes

ALICE = "oAlice000000000000000000000"
BOB = "oBob00000000000000000000000"
NONSENSE = "你们卖不卖火锅底料"
DAY = 86400


def traces(r, *needles: str) -> list[str]:
    """Every key whose name or content mentions one of ``needles``, but the webhook's reply cache
    (``bot:seen:``, the dedup window's five minutes) and RQ's jobs."""
    found = []
    for key in r.scan_iter():
        if key.startswith(("bot:seen:", "rq:")):
            continue
        kind = r.type(key)
        content = {"string": lambda k: [r.get(k)], "hash": lambda k: [*r.hgetall(k).items()],
                   "zset": lambda k: r.zrange(k, 0, -1), "list": lambda k: r.lrange(k, 0, -1),
                   "set": lambda k: list(r.smembers(k))}[kind](key)
        text = key + repr(content)
        if any(needle in text for needle in needles):
            found.append(key)
    return found


def log(r, openid: str, text: str, days: int = 30, terms=("火锅",)) -> None:
    batch = Writes()
    unanswered.record(batch, openid, text, "none", "zh", terms, days)
    batch.send(r)


def test_a_question_nothing_answers_is_logged_with_its_terms(wechat, fake_redis):
    wechat.ask(NONSENSE, ALICE)
    wechat.ask("微信公众平台的价值观是什么", ALICE)
    entries = unanswered.recent(fake_redis, 30)
    assert [(e.openid, e.text, e.kind) for e in entries] == [(ALICE, NONSENSE, "none")]
    assert "火锅" in "".join(entries[0].terms)
    counts = tally.daily(fake_redis, 1, clock_day())[tally.day_of(clock.now())]
    assert (counts["questions"], counts["answered"], counts["unanswered"]) == (2, 1, 1)


def clock_day() -> dt.date:
    return dt.datetime.fromtimestamp(clock.now(), dt.UTC).date()


@pytest.mark.parametrize("leave", ["unfollow", "forget"])
def test_unfollow_and_forget_me_erase_the_subscriber_from_the_log(wechat, fake_redis, leave):
    wechat.event("subscribe", ALICE)
    wechat.ask(NONSENSE, ALICE)
    wechat.ask("哪里能买到火锅底料", BOB)
    assert len(unanswered.recent(fake_redis, 30)) == 2
    if leave == "unfollow":
        wechat.event("unsubscribe", ALICE)
    else:
        assert "已忘记" in wechat.ask("忘记我", ALICE).text
        from bot.subscribers import forget_cached

        forget_cached(fake_redis, ALICE)  # the job 忘记我 queues for the cached answers
    assert [e.openid for e in unanswered.recent(fake_redis, 30)] == [BOB]
    assert unanswered.of(fake_redis, ALICE, 30) == []
    assert traces(fake_redis, NONSENSE) == []
    assert fake_redis.zscore(Keys.asked_by(), ALICE) is None


def test_what_is_older_than_the_retention_is_neither_shown_nor_kept(fake_redis):
    start = time.time()
    clock.install(VirtualClock(start=start, speed=0))
    log(fake_redis, ALICE, NONSENSE, days=30)
    clock.install(VirtualClock(start=start + 29 * DAY, speed=0))
    assert [e.text for e in unanswered.recent(fake_redis, 30)] == [NONSENSE]
    clock.install(VirtualClock(start=start + 30 * DAY + 1, speed=0))
    assert unanswered.recent(fake_redis, 30) == []
    assert unanswered.of(fake_redis, ALICE, 30) == []
    log(fake_redis, BOB, "另一个问题", days=30)  # any later write trims what is past its days
    assert fake_redis.zscore(Keys.asked_by(), ALICE) is None


def test_a_question_logged_longer_ago_than_the_retention_is_gone_at_once(fake_redis):
    clock.install(VirtualClock(start=time.time() - 31 * DAY, speed=0))
    log(fake_redis, ALICE, NONSENSE, days=30)
    assert traces(fake_redis, NONSENSE, ALICE) == []


@pytest.mark.redis_server
def test_the_log_expires_in_redis_when_its_days_are_over(real_redis):
    """Nobody writes again: the keys themselves expire at the end of the retention."""
    clock.install(VirtualClock(start=time.time() - 30 * DAY + 1.5, speed=0))
    log(real_redis, ALICE, NONSENSE, days=30)
    assert traces(real_redis, NONSENSE)
    assert 0 < real_redis.ttl(Keys.asked(ALICE)) <= 2
    deadline = time.monotonic() + 5
    while traces(real_redis, NONSENSE, ALICE) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert traces(real_redis, NONSENSE, ALICE) == []


def test_the_retention_is_the_operators_setting(make_app, config, fake_redis):
    from dataclasses import replace

    from tests.conftest import WeChat

    short = replace(config, console=config.console.model_copy(update={"question_log_days": 2}))
    app = make_app(config_override=short)
    WeChat(app.test_client(), app.extensions["bot.services"].settings).ask(NONSENSE, ALICE)
    assert 2 * DAY - 5 < fake_redis.ttl(Keys.asked(ALICE)) <= 2 * DAY


def test_the_same_question_in_other_words_is_one_group():
    def entry(openid, text, terms, at):
        return unanswered.Entry(openid, at, text, "none", "zh", tuple(terms))

    groups = unanswered.groups([
        entry(ALICE, "怎么退款", ["退款"], 1), entry(BOB, "如何退款？", ["退款"], 5),
        entry(ALICE, "退款多久到账", ["退款", "多久", "到", "账"], 2),
        entry(BOB, "Refund?", [], 3), entry(ALICE, "refund", [], 4),
        entry(BOB, "火锅 有卖吗", ["火锅", "卖"], 6),
        entry(ALICE, "你们卖火锅吗", ["卖", "火锅"], 0),
    ])
    summary = [(g.text, g.count, g.askers) for g in groups]
    assert summary == [("火锅 有卖吗", 2, 2), ("如何退款？", 2, 2), ("refund", 2, 2),
                       ("退款多久到账", 1, 1)]
    assert groups[1].wordings() == ["怎么退款"]


def test_counting_an_unknown_name_is_a_mistake():
    with pytest.raises(ValueError, match="unknown tally"):
        tally.count(Writes(), "questoins")

"""Subscriber records, windows, interests and the chat commands, on fakeredis."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest

from bot import clock, subscribers
from bot.clock import VirtualClock
from bot.config import load_config
from bot.push import throttle
from bot.state import Keys
from bot.state.writes import Writes

T0 = 1_790_000_000.0


@pytest.fixture()
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture()
def now() -> VirtualClock:
    virtual = VirtualClock(start=T0, speed=0)
    clock.install(virtual)
    yield virtual
    clock.reset()


@pytest.fixture()
def config(tmp_path: Path):
    (tmp_path / "push.yaml").write_text("limits:\n  per_day: 1\n  per_week: 3\n")
    return load_config(tmp_path)


def test_follow_makes_a_subscriber_with_digests_on(r, now):
    subscribers.on_follow(r, "o1", scene="poster")
    user = subscribers.record(r, "o1")
    assert (user["subscribed"], user["digests"], user["scene"]) == ("1", "on", "poster")
    assert float(user["last_act"]) == T0
    assert r.zscore(Keys.push_members(), "o1") == T0


def test_unfollow_purges_personal_data_and_queued_sends(r, now):
    subscribers.on_follow(r, "o1")
    subscribers.learn(r, "o1", ["微信", "价值观"])
    r.hset(Keys.push_pending("o1"), "daily:1", T0 + 100)
    r.zadd(Keys.push_due(), {"o1": T0 + 100})
    r.set(Keys.session("o1"), "x")
    throttle.record_cs_send(r, "o1")
    r.hset(Keys.push_cursors(), mapping={"o1": f"daily {T0}", "o2": f"daily {T0}"})
    subscribers.on_unfollow(r, "o1")
    assert not any(r.exists(key) for key in Keys.personal("o1"))
    assert not any(r.hexists(key, "o1") for key in Keys.personal_fields())
    assert r.hexists(Keys.push_cursors(), "o2")  # nobody else's
    assert r.zscore(Keys.push_members(), "o1") is None
    assert r.zscore(Keys.push_due(), "o1") is None


def cs_remaining(r, openid: str) -> int:
    """Customer-service messages the platform would still accept for ``openid`` right now: the
    window rule stated again, to check what the bot logs (``throttle.record_cs_send``)."""
    now = clock.now()
    user = subscribers.record(r, openid)
    sent = throttle.logged_sends(r, openid, "cs").values()
    best = 0
    for field, window, sends in (
        ("last_msg", subscribers.MESSAGE_WINDOW, subscribers.MESSAGE_WINDOW_SENDS),
        ("last_act", subscribers.EVENT_WINDOW, subscribers.EVENT_WINDOW_SENDS),
    ):
        opened = float(user.get(field) or 0)
        if opened and now - opened <= window:
            best = max(best, sends - sum(1 for at in sent if at >= opened))
    return best


def test_what_came_before_an_unfollow_does_not_bring_them_back(r, now):
    """A message or follow handled after the unfollow that came after it (a failover or a slow
    handler held it back) neither re-adopts them nor leaves data; one from after it does."""
    subscribers.on_follow(r, "o1")
    held_back = subscribers.activity_commands("o1", "message")  # arrived now...
    now.advance(1)
    subscribers.on_unfollow(r, "o1")  # ...they unfollowed a second later...
    batch = Writes()
    batch.commands = held_back
    batch.send(r)  # ...and only then was the message's activity written
    assert not r.exists(Keys.user("o1"))
    assert r.zscore(Keys.push_members(), "o1") is None
    assert 0 < r.ttl(Keys.gone("o1")) <= subscribers.GONE_SECONDS

    now.advance(1)
    subscribers.on_activity(r, "o1", "message")  # after the unfollow: followed again
    assert subscribers.record(r, "o1")["subscribed"] == "1"
    assert r.zscore(Keys.push_members(), "o1") == T0 + 2


def test_a_follow_handled_after_a_later_unfollow_is_skipped(r, now):
    now.advance(5)
    subscribers.on_unfollow(r, "o1")
    now.advance(-3)  # a follow from before the unfollow, written after it
    subscribers.on_follow(r, "o1")
    assert not r.exists(Keys.user("o1"))
    now.advance(3)  # the same moment: a follow again
    subscribers.on_follow(r, "o1")
    assert r.zscore(Keys.push_members(), "o1") == T0 + 5


def test_a_command_from_someone_who_unfollowed_since_changes_nothing(r, now, config):
    subscribers.on_follow(r, "o1")
    subscribers.on_unfollow(r, "o1")
    assert subscribers.chat_command(r, "o1", "订阅", config) == "你已取消关注，设置没有改动。"
    assert subscribers.chat_command(r, "o1", "stop", config) == (
        "You no longer follow this account; nothing was changed."
    )
    assert not r.exists(Keys.user("o1"))
    assert r.zscore(Keys.push_members(), "o1") is None


def test_a_message_opens_the_48h_window_with_five_sends(r, now):
    subscribers.on_activity(r, "o1", "message")
    assert cs_remaining(r, "o1") == 5
    for _ in range(2):
        throttle.record_cs_send(r, "o1")
    assert cs_remaining(r, "o1") == 3
    now.advance(48 * 3600 + 1)
    assert cs_remaining(r, "o1") == 0
    subscribers.on_activity(r, "o1", "message")
    assert cs_remaining(r, "o1") == 5


def test_a_click_opens_a_one_minute_window_with_three_sends(r, now):
    subscribers.on_activity(r, "o1", "click")
    assert cs_remaining(r, "o1") == 3
    now.advance(61)
    assert cs_remaining(r, "o1") == 0


def test_unknown_activity_is_refused(r, now):
    with pytest.raises(ValueError, match="message"):
        subscribers.on_activity(r, "o1", "dance")


def test_interests_keep_the_strongest_terms(r, now):
    subscribers.learn(r, "o1", ["a", "b"])
    subscribers.learn(r, "o1", ["a"])
    subscribers.learn(r, "o1", [f"t{i}" for i in range(60)])
    learned = subscribers.interests(r, "o1")
    assert len(learned) == subscribers.INTERESTS_KEPT
    assert learned["a"] == 2


@pytest.mark.parametrize(
    ("text", "lang", "digests"),
    [("退订", "zh", "off"), ("TD", "zh", "off"), ("td", "zh", "off"), ("stop", "en", "off"),
     ("STOP", "en", "off"), ("订阅", "zh", "on"), ("start", "en", "on")],
)
def test_stop_and_start(r, now, config, text, lang, digests):
    subscribers.on_follow(r, "o1")
    r.hset(Keys.user("o1"), "digests", "on" if digests == "off" else "off")
    answer = subscribers.chat_command(r, "o1", text, config)
    assert answer
    assert subscribers.record(r, "o1")["digests"] == digests
    assert (any("\u4e00" <= ch <= "\u9fff" for ch in answer)) == (lang == "zh")


def test_stop_cancels_deferred_digests_and_is_confirmed_once(r, now, config):
    subscribers.on_follow(r, "o1")
    r.hset(Keys.push_pending("o1"), "daily:1", T0 + 100)
    r.zadd(Keys.push_due(), {"o1": T0 + 100})
    first = subscribers.chat_command(r, "o1", "stop", config)
    second = subscribers.chat_command(r, "o1", "stop", config)
    assert first != second and "already" in second
    assert not r.exists(Keys.push_pending("o1"))
    assert r.zscore(Keys.push_due(), "o1") is None


def test_settings_show_the_current_preferences(r, now, config):
    subscribers.on_follow(r, "o1")
    assert subscribers.chat_command(r, "o1", "frequency 2", config) == (
        "OK: at most 2 digests a week, 1 a day."
    )
    subscribers.chat_command(r, "o1", "quiet 23-7", config)
    subscribers.chat_command(r, "o1", "timezone Europe/London", config)
    shown = subscribers.chat_command(r, "o1", "settings", config)
    assert shown == (
        "Digests: on\nFrequency: at most 1 a day, 2 a week\nQuiet hours: 23:00-7:00\n"
        "Time zone: Europe/London"
    )
    zh = subscribers.chat_command(r, "o1", "设置", config)
    assert "每周最多 2 篇" in zh and "Europe/London" in zh


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("频率 9", "频率 N"), ("frequency x", "frequency N"), ("frequency 0", "frequency N"),
     ("免打扰 25-8", "免打扰 22-8"), ("quiet 8-8", "quiet 22-8"), ("quiet soon", "quiet 22-8"),
     ("时区 Mars/Base", "Mars/Base"), ("timezone", "Unknown time zone")],
)
def test_bad_arguments_say_how_to_write_them(r, now, config, text, fragment):
    subscribers.on_follow(r, "o1")
    before = subscribers.record(r, "o1")
    answer = subscribers.chat_command(r, "o1", text, config)
    assert fragment in answer
    after = subscribers.record(r, "o1")
    assert {k: v for k, v in after.items() if k != "lang"} == {
        k: v for k, v in before.items() if k != "lang"
    }


def test_quiet_off_and_chinese_forms(r, now, config):
    subscribers.on_follow(r, "o1")
    assert "22:00" in subscribers.chat_command(r, "o1", "免打扰 22-8", config)
    assert subscribers.chat_command(r, "o1", "免打扰 关", config) == "已关闭免打扰。"
    assert subscribers.preferences(r, "o1", config).quiet is None
    assert "Asia/Tokyo" in subscribers.chat_command(r, "o1", "时区 Asia/Tokyo", config)


def test_forget_me_clears_interests(r, now, config):
    subscribers.on_follow(r, "o1")
    subscribers.learn(r, "o1", ["微信"])
    assert subscribers.chat_command(r, "o1", "forget me", config)
    assert subscribers.interests(r, "o1") == {}
    assert subscribers.chat_command(r, "o1", "忘记我", config) == "已忘记你的兴趣和提问记录。"


@pytest.mark.parametrize("text", ["微信的价值观是什么", "stop it please", "帮助我", "settings?x"])
def test_other_text_is_not_a_command(r, now, config, text):
    assert subscribers.chat_command(r, "o1", text, config) is None
    assert not r.exists(Keys.user("o1"))


def test_help_in_both_languages(r, now, config):
    assert "退订" in subscribers.chat_command(r, "o1", "帮助", config)
    assert "stop" in subscribers.chat_command(r, "o1", "HELP", config)


def test_preferences_never_exceed_the_account_limits(r, now, config):
    subscribers.on_follow(r, "o1")
    r.hset(Keys.user("o1"), mapping={"per_day": 9, "per_week": 9})
    prefs = subscribers.preferences(r, "o1", config)
    assert (prefs.per_day, prefs.per_week) == (1, 3)

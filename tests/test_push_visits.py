"""The visit channel: what is new rides on the reply to the subscriber's own message, once per
edition, under the same throttle as any digest (fakeredis; no API is called)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import fakeredis
import pytest

from bot import clock, subscribers
from bot.config import load_config
from bot.inbound.handlers import registry
from bot.push import runs, scheduler, visits
from bot.services import Services
from bot.settings import Settings
from bot.simulator.clock import SharedClock
from bot.state import Keys
from bot.wechat.message import TEXT_LIMIT_BYTES, Inbound, Text

SH = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=SH).timestamp()


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.r = fakeredis.FakeRedis(decode_responses=True)
        self.clock = SharedClock(self.r, at("2030-01-06T10:00:00"))
        clock.install(self.clock)
        self.folder = tmp_path
        config, content = tmp_path / "config", tmp_path / "content"
        config.mkdir()
        content.mkdir()
        (config / "account.yaml").write_text("type: subscription\nverified: false\n")
        (config / "push.yaml").write_text(
            "limits:\n  per_day: 1\n  per_week: 3\n"
            "digests:\n  - name: daily\n    schedule: '0 9 * * *'\n    channel: visit\n"
        )
        (config / "replies.yaml").write_text(
            "replies:\n  - pattern: 你好\n    reply: 你好！\n"
            "  - pattern: long\n    reply: '" + "长" * 660 + "'\n",
            encoding="utf-8",
        )
        self.article("a.md", "微信的价值观", "2030-01-05")
        settings = Settings(config_dir=config, content_dir=content)
        self.services = Services(settings, load_config(config), self.r)

    def article(self, name: str, title: str, date: str) -> None:
        (self.folder / "content" / name).write_text(
            f"---\ntitle: {title}\ndate: {date}\n---\n{title}的正文。\n", encoding="utf-8"
        )

    def follower(self, openid: str) -> str:
        subscribers.on_follow(self.r, openid)
        return openid

    def say(self, openid: str, text: str) -> str:
        """What the subscriber gets back for ``text`` (a keyword reply, no search needed)."""
        subscribers.on_activity(self.r, openid, "message")
        message = Inbound(kind="text", openid=openid, account="gh_test",
                          create_time=int(clock.now()), msg_id=str(int(clock.now() * 1000)),
                          content=text)
        reply = registry.dispatch(message, self.services)
        assert isinstance(reply, Text)
        assert len(reply.content.encode("utf-8")) <= TEXT_LIMIT_BYTES
        return reply.content

    def edition(self) -> str:
        digest = self.services.config.push.digest("daily")
        return runs.run_id("daily", runs.last_slot(digest, "Asia/Shanghai", clock.now()))

    def ledger(self) -> dict[str, str]:
        return {o: v.split("|")[0] for o, v in
                self.r.hgetall(Keys.push_ledger(self.edition())).items()}


@pytest.fixture()
def world(tmp_path: Path):
    yield World(tmp_path)
    clock.reset()


def test_the_news_rides_on_the_next_reply_once_per_edition(world):
    alice = world.follower("oalice")
    reply = world.say(alice, "你好")
    assert reply.startswith("你好！")
    assert visits.MARKS["zh"] in reply and "微信的价值观" in reply and "退订" in reply
    assert world.ledger() == {alice: "sent"}
    assert world.say(alice, "你好") == "你好！"  # decided for this edition
    world.clock.advance(86400)  # the next edition, but the 24 h cap holds nothing new anyway
    world.article("b.md", "用完即走", "2030-01-07")
    reply = world.say(alice, "你好")
    assert "用完即走" in reply and "微信的价值观" not in reply  # only what is new since


def test_the_throttle_decides_it_like_any_digest(world):
    stopped, other = world.follower("ostop"), world.follower("oother")
    subscribers.answer_command(world.r, stopped, subscribers.parse_command("退订"),
                               world.services.config)
    assert world.say(stopped, "你好") == "你好！"
    world.clock.advance(86400)  # 10:00 the next day: the cap of yesterday's is gone
    assert world.ledger() == {}
    report = world.r.hgetall(Keys.push_report(dt.datetime.fromtimestamp(
        clock.now() - 86400, dt.UTC).date().isoformat()))
    assert report == {"daily|skipped-optout": "1"}
    world.say(other, "你好")
    assert world.say(other, "你好") == "你好！"
    assert logged(world, other) == 1


def logged(world: World, openid: str) -> int:
    from bot.push.throttle import logged_sends

    return len(logged_sends(world.r, openid))


def test_quiet_hours_hold_it_back_without_a_decision(world):
    bob = world.follower("obob")
    world.clock.advance(at("2030-01-06T23:30:00") - clock.now())
    assert world.say(bob, "你好") == "你好！"
    assert world.ledger() == {}
    world.clock.advance(at("2030-01-07T08:30:00") - clock.now())  # still the 6th's edition
    assert visits.MARKS["zh"] in world.say(bob, "你好")


def test_it_never_displaces_the_answer(world):
    carol = world.follower("ocarol")
    reply = world.say(carol, "long")
    assert reply == "长" * 660  # 1980 bytes: no room for the news, and nothing decided
    assert world.ledger() == {}
    assert visits.MARKS["zh"] in world.say(carol, "你好")


def test_nothing_new_is_recorded_as_irrelevant(world):
    dave = world.follower("odave")
    world.say(dave, "你好")
    world.clock.advance(2 * 86400)
    assert world.say(dave, "你好") == "你好！"
    assert world.ledger() == {dave: "skipped-irrelevant"}


def test_the_scheduler_plans_no_run_for_a_visit_digest(world):
    world.clock.advance(at("2030-01-07T09:00:30") - clock.now())
    assert scheduler.tick(world.r, world.services.config) == []
    assert world.r.zcard(Keys.push_runs()) == 0

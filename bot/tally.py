"""Daily counts of what the bot did, for the console: questions, answers, follows, opt-outs.

One hash a UTC day (``Keys.tally``), name -> count, kept :data:`KEEP_DAYS`. Counts hold no
personal data. The digests' decisions are counted by the throttle itself (``Keys.push_report``,
:mod:`bot.push.report`), on the same UTC days.

Handlers count into the batch they already send (:meth:`bot.services.Services.later`): the
webhook pays no extra round trip.
"""

from __future__ import annotations

import datetime as dt

import redis

from bot import clock
from bot.state import Keys
from bot.state.writes import Writes

NAMES = (
    "questions", "answered", "unanswered", "more", "more_empty",
    "follows", "unfollows", "optouts", "optins", "forgets",
)
"""What is counted: questions asked (text and voice that went to the articles), answered from
them or not; requests for 更多 and those that found nothing more; follows, unfollows; 退订,
订阅 and 忘记我 commands."""

KEEP_DAYS = 40
"""Days a day's counts are kept (the console shows 30)."""


def day_of(at: float) -> str:
    """The UTC day (``yyyy-mm-dd``) of epoch seconds ``at``."""
    return dt.datetime.fromtimestamp(at, dt.UTC).date().isoformat()


def count(batch: Writes | redis.client.Pipeline, *names: str) -> None:
    """Add one to each of today's ``names`` (of :data:`NAMES`) in ``batch``; the caller sends it."""
    key = Keys.tally(day_of(clock.now()))
    for name in names:
        if name not in NAMES:
            raise ValueError(f"unknown tally {name!r}; expected one of {', '.join(NAMES)}")
        batch.hincrby(key, name, 1)
    batch.expire(key, KEEP_DAYS * 86400)


def daily(r: redis.Redis, days: int, today: dt.date) -> dict[str, dict[str, int]]:
    """The counts of each of the last ``days`` UTC days up to ``today``, oldest first."""
    dates = [(today - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    pipe = r.pipeline(transaction=False)
    for day in dates:
        pipe.hgetall(Keys.tally(day))
    return {
        day: {name: int(found.get(name, 0)) for name in NAMES}
        for day, found in zip(dates, pipe.execute(), strict=True)
    }

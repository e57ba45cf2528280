"""A subscriber's story, as the console tells it: their settings, last activity, digests, every
digest decision about them with its reason, and their unanswered questions.

Read from the same Redis state the bot acts on (the record, the sliding logs, the runs' ledgers),
never from a copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot import clock, subscribers, unanswered
from bot.push import runs
from bot.push.throttle import logged_sends
from bot.state import RUN_TTL, Keys

if TYPE_CHECKING:
    from bot.services import Services

RUNS_READ = 500
"""The most runs (the latest) whose ledgers are read for one subscriber."""


@dataclass(frozen=True)
class Decision:
    """One digest run's decision about the subscriber."""

    run: str
    digest: str
    slot: float
    reason: str
    at: float | None
    detail: str = ""


@dataclass
class Story:
    """Everything the console shows about one subscriber."""

    openid: str
    record: dict[str, str]
    preferences: subscribers.Preferences | None = None
    interests: list[tuple[str, float]] = field(default_factory=list)
    sends: list[tuple[str, float]] = field(default_factory=list)
    """Digest sends of the last 7 days: (run, time), newest first."""
    pending: list[tuple[str, float]] = field(default_factory=list)
    """Digests deferred by quiet hours: (run, due), soonest first."""
    decisions: list[Decision] = field(default_factory=list)
    """Newest slot first."""
    asked: list[unanswered.Entry] = field(default_factory=list)

    @property
    def known(self) -> bool:
        """Whether the bot keeps anything about them."""
        return bool(self.record or self.decisions or self.sends)

    def window_until(self) -> float | None:
        """When their 48 h customer-service window closes (None: closed or never opened)."""
        last = _float(self.record.get("last_msg"))
        if last is None:
            return None
        until = last + subscribers.MESSAGE_WINDOW
        return until if until > clock.now() else None


def tell(services: Services, openid: str) -> Story:
    """The story of ``openid``."""
    r = services.redis
    now = clock.now()
    record = subscribers.record(r, openid)
    story = Story(openid, record)
    if record:
        story.preferences = subscribers.preferences(r, openid, services.config)
    story.interests = sorted(subscribers.interests(r, openid).items(),
                             key=lambda item: -item[1])[:12]
    story.sends = sorted(logged_sends(r, openid).items(), key=lambda item: -item[1])
    story.pending = sorted(((run, float(due)) for run, due in
                            r.hgetall(Keys.push_pending(openid)).items()),
                           key=lambda item: item[1])
    story.decisions = decisions(services, openid, since=now - RUN_TTL)
    story.asked = unanswered.of(r, openid, services.config.console.question_log_days)
    return story


def decisions(services: Services, openid: str, since: float) -> list[Decision]:
    """Every run's decision about ``openid`` for runs slotted since ``since``, newest first."""
    r = services.redis
    found = r.zrevrangebyscore(Keys.push_runs(), "+inf", since, start=0, num=RUNS_READ)
    pipe = r.pipeline(transaction=False)
    for run in found:
        pipe.hget(Keys.push_ledger(run), openid)
    out = []
    for run, value in zip(found, pipe.execute(), strict=True):
        if not value:
            continue
        try:
            digest, slot = runs.parse_run(run)
        except ValueError:
            continue
        reason, at, detail = parse(value)
        out.append(Decision(run, digest, slot, reason, at, detail))
    return out


def parse(value: str) -> tuple[str, float | None, str]:
    """A ledger value (``reason|time[|detail]``) as (reason, time, detail)."""
    reason, _, rest = value.partition("|")
    at_text, _, detail = rest.partition("|")
    return reason, _float(at_text), detail


def recent_people(services: Services, count: int = 12) -> tuple[list[str], list[str]]:
    """Openids to pick from: the latest followers, and the latest with unanswered questions."""
    r = services.redis
    days = services.config.console.question_log_days
    followers = r.zrevrange(Keys.push_members(), 0, count - 1)
    askers = r.zrevrangebyscore(Keys.asked_by(), "+inf", clock.now() - days * 86400,
                                start=0, num=count)
    return list(followers), list(askers)


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None

"""The throttle: every digest send decided atomically in Redis at the moment of sending.

:class:`Throttle` wraps two Lua scripts. ``decide.lua`` checks, in one step and by the Redis
server's clock (plus the simulation offset ``Keys.clock_offset``, absent in production):
unsubscribed, opted out, 90 days silent, nothing relevant, quiet hours (deferred, not dropped),
the 48 h window and its quota (never the last send, custom channel), the mass quota (tag and
mass channels), the subscriber's caps over
rolling 24 h and 7 days and the account's over 24 h, all as sliding logs of send times (the
account's holds one entry per group of sends a call reserved, with its count, timed by the latest
of them), so workers with skewed clocks cannot over-send and no window lets twice the cap
through.
A send that passes is *reserved* in the run's ledger and counted before any API call, and
:meth:`Throttle.decide` returns only once a replica holds the reservations (``WAIT``, with a
replicated Redis: :func:`bot.state.durable`), so a failover cannot forget them.
``settle.lua`` records the outcome once, gives back the slots of a send that never left and
moves the subscriber's cursor past what may have reached them. Both start with ``batch.lua``: the
run's ledger, the subscribers' sliding logs and cursors (fields of one hash each) read for a whole
batch in one call and written in one, so a chunk costs Redis about one command per subscriber
(their record), not a dozen. Late replies log their use of the 48 h window through
:func:`record_cs_send`.

Decisions (the ledger keeps one per subscriber and run, the report counts them per day):
:data:`FINAL` plus ``reserved`` (an API call in flight), ``deferred-quiet``, ``retry``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import redis

from bot import clock
from bot.config import Limits
from bot.state import RUN_TTL, Keys, Lua, NotDurable, durable, epoch, timebase
from bot.subscribers import MESSAGE_WINDOW, MESSAGE_WINDOW_SENDS

FINAL = (
    "sent",
    "unknown",
    "failed-api",
    "skipped-unsubscribed",
    "skipped-optout",
    "skipped-inactive",
    "skipped-irrelevant",
    "skipped-window",
    "skipped-quiet",
    "skipped-quota",
    "skipped-cap",
    "skipped-account-cap",
)
"""Decisions that end a subscriber's part in a run."""

REASONS = (*FINAL, "deferred-quiet")
"""Every reason the report shows."""

WINDOW_MARGIN = 15 * 60
"""Seconds kept free at the end of the 48 h window (retries and clock drift must fit)."""

LEASE_SECONDS = 60
"""How long a reservation belongs to the attempt that made it; older ones were left by a crash."""

BROADCASTS = ("tag", "mass")
"""Channels whose one call reaches many: they count against the mass quotas."""

SERVICE_MASS_PER_MONTH = 4
"""A service account reaches each follower by mass send at most this often a month."""

_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Candidate:
    """One subscriber to decide for: who, whether there is something to send, quiet intervals."""

    openid: str
    has_content: bool
    quiet: Sequence[tuple[float, float]] = ()
    """Quiet intervals (epoch seconds) around now in the subscriber's time zone."""


@dataclass(frozen=True)
class Decision:
    """What the throttle decided for one subscriber."""

    openid: str
    reason: str
    at: float
    reserved: str = ""
    """The ledger value of a reservation, which :meth:`Throttle.settle` needs."""
    fresh: bool = True
    """False when an earlier attempt had already recorded this decision."""


class Throttle:
    """The rules of one digest run."""

    def __init__(
        self,
        r: redis.Redis,
        run: str,
        digest: str,
        channel: str,
        limits: Limits,
        day: str,
        account_type: str = "subscription",
    ) -> None:
        self.r = r
        self.run, self.digest, self.channel, self.limits = run, digest, channel, limits
        self.report_key = Keys.push_report(day)
        self.mass_cap = SERVICE_MASS_PER_MONTH if (
            channel in BROADCASTS and account_type == "service"
        ) else 0

    def decide(
        self, candidates: Iterable[Candidate], dry_run: bool = False, reclaim: bool = False
    ) -> list[Decision]:
        """Decide for each candidate in one script call; reserve the sends unless ``dry_run``.

        ``reclaim``: a reservation a dead attempt left (older than :data:`LEASE_SECONDS`) comes
        back as ``reserved`` (not fresh) instead of becoming ``unknown``: only for a call that
        cannot be made twice (a broadcast, idempotent by its ``clientmsgid``).
        """
        batch = list(candidates)
        if not batch:
            return []
        limits = self.limits
        args: list[str | int] = [
            self.run, self.digest, self.channel, limits.per_day, limits.per_week,
            limits.account_daily, limits.inactive_days * 86400, MESSAGE_WINDOW - WINDOW_MARGIN,
            MESSAGE_WINDOW_SENDS, self.mass_cap, LEASE_SECONDS, 1 if dry_run else 0, RUN_TTL,
            *_PREFIXES, 1 if reclaim else 0,
        ]
        formatted: dict[Sequence[tuple[float, float]], str] = {}
        for c in batch:
            quiet = formatted.get(c.quiet)
            if quiet is None:  # most subscribers share a zone and quiet hours
                quiet = formatted[c.quiet] = ",".join(f"{s!r},{e!r}" for s, e in c.quiet)
            args.append(f"{c.openid}\t{1 if c.has_content else 0}\t{quiet}")
        keys = [Keys.push_ledger(self.run), Keys.push_account(), self.report_key, Keys.push_due(),
                Keys.clock_offset(), Keys.push_account_counts(), Keys.push_logs(),
                Keys.push_mass_logs(), Keys.push_cs_logs()]
        timebase.publish(self.r)
        since = epoch(self.r)
        flat = [_text(v) for v in _script("decide.lua")(self.r, keys, args)]
        out = []
        for i, c in enumerate(batch):
            reason, at, fresh = flat[3 * i: 3 * i + 3]
            reserved = f"reserved|{at}" if reason == "reserved" else ""
            out.append(Decision(c.openid, reason, float(at), reserved, fresh == "1"))
        made = [d for d in out if d.reason == "reserved" and d.fresh]
        if made and not dry_run:
            self._replicate(made, since)
        return out

    def _replicate(self, made: list[Decision], since: int) -> None:
        """Return once a replica holds the reservations ``made``: one lost in a failover would
        let a retry send again. If none does in time, give them back (``retry``) and raise
        :class:`bot.state.NotDurable`: nothing is sent on them."""
        try:
            durable(self.r, since)
        except NotDurable:
            self.settle([(d, "retry", "not-replicated") for d in made])
            raise

    def settle(self, outcomes: Iterable[tuple[Decision, str, str]]) -> list[str]:
        """Record ``(decision, outcome, detail)`` for reserved sends; returns what was recorded."""
        records = [f"{d.openid}\t{d.reserved}\t{outcome}\t{detail}"
                   for d, outcome, detail in outcomes]
        if not records:
            return []
        keys = [Keys.push_ledger(self.run), self.report_key, Keys.push_account(),
                Keys.clock_offset(), Keys.push_account_counts(), Keys.push_logs(),
                Keys.push_mass_logs(), Keys.push_cs_logs(), Keys.push_cursors(),
                Keys.push_members()]
        timebase.publish(self.r)
        args = [self.run, self.digest, self.channel, *records]
        return [_text(v) for v in _script("settle.lua")(self.r, keys, args)]


_PREFIXES = (Keys.user(""), Keys.push_pending(""))
"""Key prefixes decide.lua completes with an openid (the keys themselves are built by Keys)."""

LOGS = {"digest": Keys.push_logs(), "mass": Keys.push_mass_logs(), "cs": Keys.push_cs_logs()}
"""The sliding logs: name -> hash. Their format, and how long each keeps an entry (``KEEP``),
are in batch.lua."""


def log_entries(text: str | None) -> dict[str, float]:
    """One field of a log hash (a sliding log, the cursors) as tag -> time."""
    entries = (e.partition(" ") for e in (text or "").split(";") if e)
    return {tag: float(at) for tag, _, at in entries}


def logged_sends(r: redis.Redis, openid: str, log: str = "digest") -> dict[str, float]:
    """A subscriber's sliding log ``log`` (a name of :data:`LOGS`): tag -> time of the send."""
    return log_entries(r.hget(LOGS[log], openid))


def record_cs_send(r: redis.Redis, openid: str) -> None:
    """Log a customer-service message sent outside the digests (e.g. a late reply)."""
    _script("window.lua")(
        r, [Keys.push_cs_logs()], [openid, f"reply:{secrets.token_hex(4)}", f"{clock.now():.3f}"]
    )


def prune_logs(r: redis.Redis, count: int = 1000) -> int:
    """Trim the sliding logs of up to ``count`` subscribers of each hash; returns how many.

    Each call goes on where the last one stopped (``HSCAN``), so the scheduler's ticks go round
    all of them; a digest or settle trims a log itself whenever it touches one.
    """
    script = _script("prune.lua")
    done = 0
    for name, key in LOGS.items():
        cursor, found = r.hscan(key, int(r.hget(Keys.push_logs_cursor(), name) or 0), count=count)
        openids = list(found)
        if openids:
            done += int(script(r, [key, Keys.clock_offset()], [name, *openids]))
        r.hset(Keys.push_logs_cursor(), name, cursor)
    return done


@cache
def _script(name: str) -> Lua:
    """A script with the functions it shares (``batch.lua``) in front (read once a process)."""
    return Lua.from_files(_HERE / "batch.lua", _HERE / name)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

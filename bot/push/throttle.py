"""The throttle: every digest send decided atomically in Redis at the moment of sending.

:class:`Throttle` wraps two Lua scripts. ``decide.lua`` checks, in one step and by the Redis
server's clock (plus the simulation offset ``Keys.clock_offset``, absent in production):
unsubscribed, opted out, 90 days silent, nothing relevant, quiet hours (deferred, not dropped),
the 48 h window and its quota (never the last send), the mass quota, the subscriber's caps over
rolling 24 h and 7 days and the account's over 24 h, all as sliding logs (sorted sets of send
times), so workers with skewed clocks cannot over-send and no window lets twice the cap through.
A send that passes is *reserved* in the run's ledger and counted before any API call.
``settle.lua`` records the outcome once and gives back the slots of a send that never left.

Decisions (the ledger keeps one per subscriber and run, the report counts them per day):
:data:`FINAL` plus ``reserved`` (an API call in flight), ``deferred-quiet``, ``retry``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bot.config import Limits
from bot.state import Keys
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
            channel == "mass" and account_type == "service"
        ) else 0
        self._decide = r.register_script((_HERE / "decide.lua").read_text())
        self._settle = r.register_script((_HERE / "settle.lua").read_text())

    def decide(self, candidates: Iterable[Candidate], dry_run: bool = False) -> list[Decision]:
        """Decide for each candidate in one pipeline; reservations are made unless ``dry_run``."""
        pipe = self.r.pipeline(transaction=False)
        order = []
        for c in candidates:
            order.append(c.openid)
            self._decide(keys=self._keys(c.openid), args=self._args(c, dry_run), client=pipe)
        out = []
        for openid, (reason, at, fresh) in zip(order, pipe.execute(), strict=True):
            reason = _text(reason)
            at_text = _text(at)
            reserved = f"reserved|{at_text}" if reason == "reserved" else ""
            out.append(Decision(openid, reason, float(at_text), reserved, bool(int(fresh))))
        return out

    def settle(self, outcomes: Iterable[tuple[Decision, str, str]]) -> list[str]:
        """Record ``(decision, outcome, detail)`` for reserved sends; returns what was recorded."""
        pipe = self.r.pipeline(transaction=False)
        for decision, outcome, detail in outcomes:
            o = decision.openid
            self._settle(
                keys=[
                    Keys.push_ledger(self.run),
                    self.report_key,
                    Keys.push_log(o),
                    Keys.push_account(),
                    Keys.push_cs(o),
                    Keys.push_mass(o),
                    Keys.user(o),
                ],
                args=[
                    o, self.run, self.digest, decision.reserved, outcome, detail,
                    f"cursor:{self.digest}",
                ],
                client=pipe,
            )
        return [_text(v) for v in pipe.execute()]

    def _keys(self, openid: str) -> list[str]:
        return [
            Keys.user(openid),
            Keys.push_log(openid),
            Keys.push_cs(openid),
            Keys.push_mass(openid),
            Keys.push_ledger(self.run),
            Keys.push_account(),
            self.report_key,
            Keys.push_pending(openid),
            Keys.push_due(),
            Keys.clock_offset(),
        ]

    def _args(self, c: Candidate, dry_run: bool) -> list[str | int | float]:
        limits = self.limits
        args: list[str | int | float] = [
            c.openid,
            self.run,
            self.digest,
            self.channel,
            1 if c.has_content else 0,
            limits.per_day,
            limits.per_week,
            limits.account_daily,
            limits.inactive_days * 86400,
            MESSAGE_WINDOW - WINDOW_MARGIN,
            MESSAGE_WINDOW_SENDS,
            self.mass_cap,
            LEASE_SECONDS,
            1 if dry_run else 0,
            len(c.quiet),
        ]
        for start, end in c.quiet:
            args.extend((repr(float(start)), repr(float(end))))
        return args


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

"""Respect figures: the fake API's delivery log checked against what subscribers did and chose.

:func:`check` reads the scenario's ``timeline.jsonl`` (``time``, ``openid``, ``event``:
subscribe, unsubscribe, message, optout, optin, timezone, quiet) and the delivery log, replays
each subscriber's state as the bot should know it (chat commands are messages too; unsubscribing
forgets every choice), and counts, for the digests that were delivered (customer-service
messages, broadcasts, and the news a visit digest adds to a passive reply): the most to one
subscriber in any 24 h and any 7 days, those in quiet hours, to the opted-out, unsubscribed or
90-day silent, customer-service ones outside the 48 h window, duplicates (two for one slot), the
subscribers left
without a decision in a run's ledger, and coverage (the share of subscribers who, at some slot,
wanted a digest and could get one, who got at least one).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis

from bot.config import Config
from bot.push import runs, visits
from bot.state import Keys

DIGEST_MARKS = ("为你挑选的", "picked for you:", *visits.MARKS.values())
"""Text that tells a digest from other messages: a scheduled digest's first line, or the block a
visit digest adds to a passive reply (:mod:`bot.push.visits`)."""

DIGEST_APIS = ("custom", "mass", "reply")
"""Delivery-log entries that may carry a digest: customer-service messages, broadcasts (one line
per recipient), passive replies."""

LOG_RESOLUTION = 0.000999
"""The delivery log keeps milliseconds (truncated): a send logged at millisecond M happened before
M + 1 ms."""

COMMAND_EVENTS = frozenset({"optout", "optin", "timezone", "quiet", "message"})
"""Timeline events that were text messages (they open the 48 h window)."""


@dataclass
class Known:
    """What the bot should know of one subscriber at a moment."""

    subscribed: bool = False
    optout: bool = False
    zone: str = ""
    quiet: str = ""
    last_message: float | None = None
    last_seen: float | None = None
    history: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


def _states(timeline: Path, default_zone: str, default_quiet: str) -> dict[str, Known]:
    people: dict[str, Known] = defaultdict(Known)
    rows = [json.loads(line) for line in timeline.read_text(encoding="utf-8").splitlines() if line]
    rows.sort(key=lambda row: row["time"])
    for row in rows:
        k = people[row["openid"]]
        at, event = row["time"], row["event"]
        if event == "subscribe":
            k.subscribed, k.last_seen = True, at
        elif event == "unsubscribe":
            k.subscribed, k.optout, k.zone, k.quiet = False, False, "", ""
            k.last_message = k.last_seen = None
        if event in COMMAND_EVENTS:
            k.last_message = k.last_seen = at
        if event == "optout":
            k.optout = True
        elif event == "optin":
            k.optout = False
        elif event == "timezone":
            k.zone = row.get("zone", "")
        elif event == "quiet":
            k.quiet = row.get("quiet", "")
        k.history.append((at, {
            "subscribed": k.subscribed, "optout": k.optout,
            "zone": k.zone or default_zone, "quiet": k.quiet or default_quiet,
            "last_message": k.last_message, "last_seen": k.last_seen,
        }))
    return people


def _at(k: Known, when: float) -> dict[str, Any] | None:
    times = [t for t, _ in k.history]
    i = bisect.bisect_right(times, when) - 1
    return k.history[i][1] if i >= 0 else None


def _in_quiet(when: float, zone: str, quiet: str) -> bool:
    start, _, end = quiet.partition("-")
    if quiet == "off" or not start.isdigit():
        return False
    hour = dt.datetime.fromtimestamp(when, ZoneInfo(zone)).hour
    s, e = int(start), int(end)
    return s <= hour < e if s < e else (hour >= s or hour < e)


def _most_within(times: list[float], span: float) -> int:
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - span:
            j += 1
        best = max(best, i - j + 1)
    return best


def check(
    timeline: Path, deliveries: Path, r: redis.Redis, config: Config, start: float, end: float
) -> dict[str, Any]:
    """The respect figures of one scenario."""
    limits = config.push.limits
    zone = config.account.timezone
    people = _states(timeline, zone, f"{limits.quiet_start}-{limits.quiet_end}")
    digests: dict[str, list[float]] = defaultdict(list)
    for line in deliveries.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        content = entry.get("content", "")
        if entry.get("api") in DIGEST_APIS and any(mark in content for mark in DIGEST_MARKS):
            when = dt.datetime.fromisoformat(entry["time"]).timestamp()
            digests[entry["openid"]].append((when, entry["api"]))
    figures = dict.fromkeys(
        ("digests_delivered", "in_quiet_hours", "to_opted_out", "to_unsubscribed",
         "to_silent_90_days", "outside_48h_window", "duplicates"), 0)
    most_day = most_week = 0
    digest = config.push.digests[0]
    by_api: dict[str, int] = defaultdict(int)
    for openid, sends in digests.items():
        sends.sort()
        times = [when for when, _ in sends]
        figures["digests_delivered"] += len(times)
        most_day = max(most_day, _most_within(times, 86400))
        most_week = max(most_week, _most_within(times, 7 * 86400))
        slots: dict[float, int] = defaultdict(int)
        for when, api in sends:
            by_api[api] += 1
            slots[runs.last_slot(digest, zone, when)] += 1
            known = _at(people[openid], when + LOG_RESOLUTION)
            if known is None or not known["subscribed"]:
                figures["to_unsubscribed"] += 1
                continue
            if known["optout"]:
                figures["to_opted_out"] += 1
            silent = limits.inactive_days * 86400
            if known["last_seen"] is None or when - known["last_seen"] > silent:
                figures["to_silent_90_days"] += 1
            if api == "custom" and (  # only customer-service messages need the window
                    known["last_message"] is None or when - known["last_message"] > 48 * 3600):
                figures["outside_48h_window"] += 1
            if _in_quiet(when, known["zone"], known["quiet"]):
                figures["in_quiet_hours"] += 1
        figures["duplicates"] += sum(n - 1 for n in slots.values() if n > 1)
    wanted = got = 0
    slots_all = []
    t = runs.last_slot(digest, zone, end)
    while t >= start:
        slots_all.append(t)
        t = runs.last_slot(digest, zone, t - 1)
    for openid, k in people.items():
        eligible = False
        for slot in slots_all:
            known = _at(k, slot)
            if (known and known["subscribed"] and not known["optout"]
                    and known["last_message"] is not None
                    and slot - known["last_message"] < 47 * 3600):
                eligible = True
                break
        if eligible:
            wanted += 1
            got += bool(digests.get(openid))
    undecided = 0
    for run in r.zrange(Keys.push_runs(), 0, -1):
        for value in r.hvals(Keys.push_ledger(run)):
            if value.startswith(("reserved|", "retry|")):
                undecided += 1
    reasons: dict[str, int] = defaultdict(int)
    for key in r.scan_iter(Keys.push_report("*")):
        for name, value in r.hgetall(key).items():
            reasons[name.partition("|")[2]] += int(value)
    figures.update(
        most_digests_in_24h=most_day,
        most_digests_in_7d=most_week,
        caps=f"{limits.per_day}/24h, {limits.per_week}/7d",
        digests_by_api=dict(sorted(by_api.items())),
        undecided_after_recovery=undecided,
        still_deferred=r.zcard(Keys.push_due()),
        coverage=round(got / wanted, 3) if wanted else None,
        wanted_digests=wanted,
        got_digests=got,
        decisions=dict(sorted(reasons.items())),
    )
    return figures

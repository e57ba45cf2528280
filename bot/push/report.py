"""The operator's view of decisions: counts by reason per day, as a table and a terminal chart;
and each mass send of the period with its receipt."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import redis

from bot.push import receipts
from bot.push.throttle import REASONS
from bot.state import Keys

BAR_WIDTH = 40
"""Characters of the longest bar in the chart."""

MARKS = {"sent": "█", "deferred-quiet": "▒", "unknown": "?", "failed-api": "x"}
"""How each reason is drawn; every skip is drawn as ``·``."""


def daily(r: redis.Redis, days: int, today: dt.date) -> dict[str, Counter[str]]:
    """Decisions by reason for each of the last ``days`` UTC days (oldest first)."""
    out: dict[str, Counter[str]] = {}
    pipe = r.pipeline(transaction=False)
    dates = [(today - dt.timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
    for day in dates:
        pipe.hgetall(Keys.push_report(day))
    for day, fields in zip(dates, pipe.execute(), strict=True):
        counts: Counter[str] = Counter()
        for field, value in fields.items():
            reason = field.partition("|")[2]
            counts[reason] += int(value)
        out[day] = counts
    return out


def table(counts: dict[str, Counter[str]]) -> str:
    """A day-by-reason table (reasons that never occurred are left out)."""
    used = [reason for reason in (*REASONS, "unknown") if any(c[reason] for c in counts.values())]
    used = list(dict.fromkeys(used))
    header = ["day", *used]
    rows = [[day, *(str(c[reason]) for reason in used)] for day, c in counts.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
             for row in [header, *rows]]
    return "\n".join(lines)


def chart(counts: dict[str, Counter[str]]) -> str:
    """One stacked bar a day: sent, deferred, unknown, failed, then skips."""
    biggest = max((sum(c.values()) for c in counts.values()), default=0) or 1
    lines = []
    for day, c in counts.items():
        bar = ""
        for reason, n in sorted(c.items(), key=lambda item: _order(item[0])):
            mark = MARKS.get(reason, "·")
            bar += mark * round(n / biggest * BAR_WIDTH)
        lines.append(f"{day} {bar} {sum(c.values())}")
    legend = "  ".join(f"{mark} {reason}" for reason, mark in MARKS.items()) + "  · skipped"
    return "\n".join([*lines, legend])


def mass_sends(r: redis.Redis, since: float) -> list[str]:
    """One line per mass send of the runs slotted since ``since``, with its receipt if it came."""
    runs = r.zrangebyscore(Keys.push_runs(), since, "+inf")
    pipe = r.pipeline(transaction=False)
    for run in runs:
        pipe.hgetall(Keys.push_plan(run))
    return [
        f"{run} {receipt.describe()}"
        for run, plan in zip(runs, pipe.execute(), strict=True)
        for receipt in receipts.of_run(plan)
    ]


def _order(reason: str) -> int:
    keys = list(MARKS)
    return keys.index(reason) if reason in keys else len(keys)

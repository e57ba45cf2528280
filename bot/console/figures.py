"""The overview's figures: what the bot did each day, as charts (for Chart.js) and tables.

A :class:`Figure` is one chart and the table beside it, from the same numbers: the table is the
page without JavaScript. Days are UTC days, those of the digest report (:mod:`bot.push.report`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from bot import tally
from bot.console.words import REASON_COLORS, word
from bot.push import report
from bot.push.throttle import REASONS

DAYS = 30
"""Days the overview shows."""

COLORS = {
    "answered": "#2e7d32", "unanswered": "#c62828", "more_empty": "#ef6c00",
    "follows": "#1565c0", "unfollows": "#9e9e9e", "optouts": "#6d4c41", "optins": "#00897b",
    "forgets": "#8e24aa",
}


@dataclass(frozen=True)
class Figure:
    """One chart and its table."""

    id: str
    title: str
    spec: dict[str, Any]
    """What ``console.js`` draws (kind, stacked, labels, datasets)."""
    columns: list[str]
    rows: list[list[str | int]]
    """A row a day (newest first), then the total."""


@dataclass(frozen=True)
class Overview:
    """The overview page's numbers."""

    today: dict[str, int]
    figures: list[Figure]


def overview(r: redis.Redis, today: dt.date, lang: str, days: int = DAYS) -> Overview:
    """The figures of the ``days`` UTC days up to ``today``, in ``lang``."""
    counts = tally.daily(r, days, today)
    decisions = report.daily(r, days, today)
    labels = list(counts)
    figures = [
        _figure("questions", word("chart.questions", lang), labels, counts,
                ["answered", "unanswered", "more_empty"], lang, stacked=True),
        _figure("people", word("chart.people", lang), labels, counts,
                ["follows", "unfollows", "optouts", "optins", "forgets"], lang, stacked=False),
        _digests(labels, decisions, lang),
    ]
    last = counts[labels[-1]]
    held = sum(n for name, n in decisions[labels[-1]].items()
               if name.startswith("skipped-") or name == "deferred-quiet")
    today_figures = {**last, "digests_sent": decisions[labels[-1]]["sent"], "digests_held": held}
    return Overview(today_figures, figures)


def _figure(
    fid: str, title: str, labels: list[str], counts: dict[str, dict[str, int]],
    names: list[str], lang: str, stacked: bool,
) -> Figure:
    series = {name: [counts[day][name] for day in labels] for name in names}
    spec = {
        "kind": "bar", "stacked": stacked, "labels": labels,
        "datasets": [{"label": word(f"tally.{name}", lang), "data": series[name],
                      "color": COLORS.get(name, "#607d8b")} for name in names],
    }
    columns = [word("day", lang), *(word(f"tally.{name}", lang) for name in names)]
    rows: list[list[str | int]] = [
        [day, *(counts[day][name] for name in names)] for day in reversed(labels)
    ]
    rows.append([word("total", lang), *(sum(series[name]) for name in names)])
    return Figure(fid, title, spec, columns, rows)


def _digests(labels: list[str], decisions: dict[str, Counter[str]], lang: str) -> Figure:
    used = [name for name in (*REASONS, "unknown")
            if any(decisions[day][name] for day in labels)]
    used = list(dict.fromkeys(used)) or ["sent"]
    spec = {
        "kind": "bar", "stacked": True, "labels": labels,
        "datasets": [{"label": name, "data": [decisions[day][name] for day in labels],
                      "color": REASON_COLORS.get(name, "#607d8b")} for name in used],
    }
    columns = [word("day", lang), *used]
    rows: list[list[str | int]] = [
        [day, *(decisions[day][name] for name in used)] for day in reversed(labels)
    ]
    rows.append([word("total", lang), *(sum(decisions[day][name] for day in labels)
                                        for name in used)])
    return Figure("digests", word("chart.digests", lang), spec, columns, rows)

"""The question log: what subscribers asked that the articles could not answer ("write this next").

A question is logged when its answer was "nothing on that" (kind ``none``), or when the
subscriber asked for 更多 after an answer and no other passage was left (kind ``more``: the first
one was not what they wanted). An entry holds the openid, the text, its language and its index
terms, for ``console.question_log_days`` (config/console.yaml) and no longer::

    Keys.asked(openid)   their entries, JSON scored by time (zset)
    Keys.asked_by()      who has entries, scored by the time of their latest one (zset)

Every write trims both to the retention and sets their expiry to it, so an entry outlives its
days neither while its author keeps asking (trimmed) nor when nobody asks again (expired); what
is read is cut at the retention too. ``Keys.asked(openid)`` is one of ``Keys.personal``:
unfollowing and 忘记我 delete it, and the openid's place in ``Keys.asked_by``, with the rest of
their data (:func:`bot.subscribers.on_unfollow`, :func:`bot.subscribers.forget`).

:func:`groups` puts together the questions that ask the same thing, for the console.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import redis

from bot import clock
from bot.state import Keys
from bot.state.writes import Writes
from bot.subscribers import command_text

KINDS = ("none", "more")
"""``none``: answered "nothing on that"; ``more``: 更多 found no other passage."""

READ_LIMIT = 20_000
"""The most entries the console reads (the newest), however many the retention holds."""

SAME_QUESTION = 0.6
"""Two groups ask the same thing when their terms overlap this much (Jaccard)."""


@dataclass(frozen=True)
class Entry:
    """One logged question."""

    openid: str
    at: float
    text: str
    kind: str
    language: str
    terms: tuple[str, ...]


def record(
    batch: Writes | redis.client.Pipeline,
    openid: str,
    text: str,
    kind: str,
    language: str,
    terms: Iterable[str],
    days: int,
) -> None:
    """Log ``text`` in ``batch`` (the caller sends it), trimming to ``days`` of retention."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    now = clock.now()
    cutoff = now - days * 86400
    until = int(now) + days * 86400
    entry = json.dumps(
        {"t": round(now, 3), "q": text, "k": kind, "l": language, "w": list(terms)},
        ensure_ascii=False, separators=(",", ":"),
    )
    mine, everyone = Keys.asked(openid), Keys.asked_by()
    batch.zadd(mine, {entry: now})
    batch.zremrangebyscore(mine, "-inf", f"({cutoff}")
    batch.expireat(mine, until)
    batch.zadd(everyone, {openid: now})
    batch.zremrangebyscore(everyone, "-inf", f"({cutoff}")
    batch.expireat(everyone, until)


def recent(r: redis.Redis, days: int, limit: int = READ_LIMIT) -> list[Entry]:
    """The entries of the last ``days`` (at most ``limit``, the newest), newest first."""
    cutoff = clock.now() - days * 86400
    openids = r.zrevrangebyscore(Keys.asked_by(), "+inf", cutoff, start=0, num=limit)
    pipe = r.pipeline(transaction=False)
    for openid in openids:
        pipe.zrevrangebyscore(Keys.asked(openid), "+inf", cutoff, withscores=True)
    found = [
        entry
        for openid, rows in zip(openids, pipe.execute(), strict=True)
        for entry in _entries(openid, rows)
    ]
    found.sort(key=lambda e: e.at, reverse=True)
    return found[:limit]


def of(r: redis.Redis, openid: str, days: int) -> list[Entry]:
    """One subscriber's entries of the last ``days``, newest first."""
    cutoff = clock.now() - days * 86400
    rows = r.zrevrangebyscore(Keys.asked(openid), "+inf", cutoff, withscores=True)
    return _entries(openid, rows)


def _entries(openid: str, rows: Sequence[tuple[str, float]]) -> list[Entry]:
    out = []
    for raw, at in rows:
        try:
            data = json.loads(raw)
            out.append(Entry(openid, float(at), str(data["q"]), str(data.get("k", "none")),
                             str(data.get("l", "zh")), tuple(data.get("w") or ())))
        except (ValueError, KeyError, TypeError):
            continue  # not written by record(): skip it rather than fail the page
    return out


@dataclass
class Group:
    """Questions that ask the same thing: how often, by how many, the latest wordings."""

    terms: frozenset[str]
    entries: list[Entry] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many times it was asked."""
        return len(self.entries)

    @property
    def askers(self) -> int:
        """How many subscribers asked it."""
        return len({e.openid for e in self.entries})

    @property
    def latest(self) -> float:
        """When it was last asked."""
        return max(e.at for e in self.entries)

    @property
    def text(self) -> str:
        """Its latest wording."""
        return max(self.entries, key=lambda e: e.at).text

    def wordings(self, limit: int = 3) -> list[str]:
        """Other wordings, newest first, each once."""
        seen = {_folded(self.text)}
        out = []
        for entry in sorted(self.entries, key=lambda e: e.at, reverse=True):
            folded = _folded(entry.text)
            if folded not in seen:
                seen.add(folded)
                out.append(entry.text)
            if len(out) >= limit:
                break
        return out


def groups(entries: Iterable[Entry]) -> list[Group]:
    """The entries grouped when they ask the same thing, newest group first.

    The same thing: the same index terms (「怎么退款」 and 「如何退款？」 are both 退款), or
    terms that overlap by :data:`SAME_QUESTION` or more; a question without terms goes by its
    text, folded (case, width, punctuation around it).
    """
    exact: dict[frozenset[str], Group] = {}
    for entry in entries:
        key = frozenset(entry.terms) or frozenset({"\0" + _folded(entry.text)})
        exact.setdefault(key, Group(key)).entries.append(entry)
    merged: list[Group] = []
    for group in sorted(exact.values(), key=lambda g: (-g.count, -g.latest)):
        home = next((m for m in merged if _overlap(m.terms, group.terms) >= SAME_QUESTION), None)
        if home is None:
            merged.append(group)
        else:
            home.entries.extend(group.entries)
    return sorted(merged, key=lambda g: g.latest, reverse=True)


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _folded(text: str) -> str:
    return command_text(text).casefold()

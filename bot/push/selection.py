"""What goes into a subscriber's digest: new articles, ranked by the subscriber's interests.

:class:`Catalog` holds the articles of ``content/`` with their publication time (the front
matter's ``date``, midnight in the account's time zone; files without a date count from when the
catalog first saw them) and their terms (the search analyzer's tokens of title, tags and text).
:meth:`Catalog.pick` takes the articles published since the subscriber's last digest and up to
now, scores each by the subscriber's interest weights times the term's rarity, and keeps the best
``items``; a subscriber with interests gets only articles that share a term with them, one
without interests gets the newest. Nothing new or nothing relevant gives an empty pick, and
nothing is sent.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

FIRST_DIGEST_LOOKBACK = 7 * 86400
"""A subscriber's first digest covers articles published up to this long before they followed."""


@dataclass(frozen=True)
class Item:
    """One article as a digest shows it."""

    key: str
    title: str
    url: str
    language: str
    published: float
    terms: frozenset[str]


class Catalog:
    """The articles a digest may pick from."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.items = sorted(items, key=lambda i: (-i.published, i.key))
        frequency: dict[str, int] = defaultdict(int)
        for item in self.items:
            for term in item.terms:
                frequency[term] += 1
        total = max(len(self.items), 1)
        self.idf = {t: math.log(1 + total / n) for t, n in frequency.items()}
        self.by_term: dict[str, list[Item]] = defaultdict(list)
        for item in self.items:
            for term in item.terms:
                self.by_term[term].append(item)

    @classmethod
    def load(cls, content_dir: Path, config_dir: Path, timezone: str) -> Catalog:
        """The articles under ``content_dir`` (broken files are left out, as search does)."""
        return _load(str(content_dir), str(config_dir), timezone, _fingerprint(content_dir))

    def pick(
        self,
        interests: Mapping[str, float],
        since: float,
        until: float,
        items: int,
    ) -> list[Item]:
        """The best ``items`` articles published in ``(since, until]`` for these interests."""
        if not interests:
            fresh = [i for i in self.items if since < i.published <= until]
            return fresh[:items]
        scores: dict[str, float] = defaultdict(float)
        chosen: dict[str, Item] = {}
        for term, weight in interests.items():
            for item in self.by_term.get(term, ()):
                if since < item.published <= until:
                    scores[item.key] += weight * self.idf[term]
                    chosen[item.key] = item
        ranked = sorted(chosen.values(), key=lambda i: (-scores[i.key], -i.published, i.key))
        return ranked[:items]

    def newest(self, until: float) -> float:
        """Publication time of the newest article available at ``until`` (0 when none)."""
        return next((i.published for i in self.items if i.published <= until), 0.0)


BOTH = "both"
"""The language of a broadcast: one text reaches Chinese and English subscribers alike."""


def render(picked: list[Item], lang: str) -> str:
    """The digest's text message, in the subscriber's language (or :data:`BOTH`, for a
    broadcast), with how to stop it."""
    zh_head = f"为你挑选的 {len(picked)} 篇新文章："
    zh_tail = "回复「退订」停止推送，「设置」调整频率。"
    en_head = f"{len(picked)} new article{'s' if len(picked) > 1 else ''} picked for you:"
    en_tail = "Reply 'stop' to end digests, 'settings' to change them."
    if lang == BOTH:
        head, tail = f"{zh_head}\n{en_head}", f"{zh_tail}\n{en_tail}"
    elif lang == "zh":
        head, tail = zh_head, zh_tail
    else:
        head, tail = en_head, en_tail
    lines = [head]
    for n, item in enumerate(picked, 1):
        lines.append(f"{n}. {item.title}" + (f"\n   {item.url}" if item.url else ""))
    lines.append(tail)
    return "\n".join(lines)


def _fingerprint(content_dir: Path) -> tuple[tuple[str, int, int], ...]:
    from bot.search.content import content_files

    found = []
    for path in content_files(content_dir):
        stat = path.stat()
        found.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(found)


@lru_cache(maxsize=4)
def _load(
    content_dir: str, config_dir: str, timezone: str, fingerprint: tuple[object, ...]
) -> Catalog:
    from bot.search.content import load_folder

    analyzer = analyzer_for(config_dir)
    zone = ZoneInfo(timezone)
    items = []
    for article in load_folder(Path(content_dir)).articles:
        if article.date:
            day = dt.date.fromisoformat(str(article.date)[:10])
            published = dt.datetime.combine(day, dt.time(), zone).timestamp()
        else:
            published = (Path(content_dir) / article.path).stat().st_mtime
        text = " ".join((article.title, *article.tags, article.body))
        items.append(
            Item(
                key=article.path,
                title=article.title,
                url=article.source,
                language=article.language,
                published=published,
                terms=frozenset(analyzer.tokens(text)),
            )
        )
    return Catalog(items)


@lru_cache(maxsize=2)
def analyzer_for(config_dir: str):  # noqa: ANN201 - the search area's Analyzer, imported lazily
    """The search analyzer configured by ``config_dir`` (one per process)."""
    from bot.search.analyzer import Analyzer

    return Analyzer.from_config(Path(config_dir))

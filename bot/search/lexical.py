"""BM25 over jieba tokens, in a tantivy index persisted on disk and updated one file at a time.

Tokens come from :class:`bot.search.analyzer.Analyzer` and are indexed with tantivy's whitespace
tokenizer, so tantivy ranks exactly what jieba and the synonym table produced. A passage's
title tokens are a second field whose weight is ``title_boost``. Each passage also keeps its
text and its set of tokens, so a hit can be quoted and its query coverage measured.

Reading a stored passage back (a document fetch and a JSON decode) costs more than ranking, so
each searcher snapshot keeps the passages it has returned in memory, by address, the
:data:`PASSAGES_KEPT` most recently used: a passage asked for again costs a dictionary lookup.
A reload (new content) starts a new snapshot with nothing kept.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import tantivy

from bot.search.passages import Passage

TOKENIZER = "jieba_tokens"
WRITER_HEAP = 32_000_000
"""Bytes tantivy's writer buffers before it flushes a segment (the build's memory)."""

PASSAGES_KEPT = 10_000
"""Passages each snapshot keeps in memory with their token sets (about 4 KB each: 40 MB at most)."""


@dataclass(frozen=True)
class LexicalHit:
    """A passage found by BM25, with its share of the query's weight that it covers."""

    passage: Passage
    score: float
    coverage: float


class Batch:
    """Changes to the index inside :meth:`LexicalIndex.writing`."""

    def __init__(self, writer: tantivy.IndexWriter) -> None:
        self._writer = writer

    def delete(self, path: str) -> None:
        """Remove every passage of the article at ``path``."""
        self._writer.delete_documents_by_term("path", path)

    def add(self, passage: Passage, tokens: list[str], title_tokens: list[str]) -> None:
        """Index one passage with its body and title tokens."""
        meta = json.dumps(
            {
                "path": passage.path,
                "title": passage.title,
                "text": passage.text,
                "language": passage.language,
                "position": passage.position,
            },
            ensure_ascii=False,
        ).encode()
        self._writer.add_document(
            tantivy.Document(
                pid=passage.pid,
                path=passage.path,
                body=" ".join(tokens),
                title=" ".join(title_tokens),
                meta=meta,
            )
        )


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("pid", stored=True, tokenizer_name="raw")
    builder.add_text_field("path", stored=False, tokenizer_name="raw")
    builder.add_text_field("body", stored=True, tokenizer_name=TOKENIZER, index_option="freq")
    builder.add_text_field("title", stored=False, tokenizer_name=TOKENIZER, index_option="freq")
    builder.add_bytes_field("meta", stored=True, indexed=False)
    return builder.build()


def _analyzer() -> tantivy.TextAnalyzer:
    return tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.whitespace()).build()


class _Snapshot:
    """One searcher and the passages read through it, kept by address (valid for this one)."""

    def __init__(self, searcher: tantivy.Searcher) -> None:
        self.searcher = searcher
        self._stored = lru_cache(maxsize=PASSAGES_KEPT)(partial(_read, searcher))

    def passage(self, address: tantivy.DocAddress) -> tuple[Passage, frozenset[str]]:
        """The passage a hit points at and its body tokens, read once."""
        return self._stored(address.segment_ord, address.doc)


def _read(searcher: tantivy.Searcher, segment: int, doc: int) -> tuple[Passage, frozenset[str]]:
    document = searcher.doc(tantivy.DocAddress(segment, doc))
    return _passage(document), frozenset(document["body"][0].split())


class LexicalIndex:
    """A tantivy index in ``folder`` (created when missing)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.schema = _schema()
        self.index = tantivy.Index(self.schema, path=str(folder), reuse=True)
        self.index.register_tokenizer(TOKENIZER, _analyzer())
        self._snapshot = _Snapshot(self.index.searcher())

    @property
    def searcher(self) -> tantivy.Searcher:
        """The current searcher."""
        return self._snapshot.searcher

    @contextmanager
    def writing(self, clear: bool = False) -> Iterator[Batch]:
        """A batch of deletions and additions, committed (and made visible) at the end."""
        writer = self.index.writer(WRITER_HEAP, 1)
        if clear:
            writer.delete_all_documents()
        try:
            yield Batch(writer)
        except BaseException:
            writer.rollback()
            raise
        writer.commit()
        writer.wait_merging_threads()
        self.reload()

    def reload(self) -> None:
        """See what another process committed."""
        self.index.reload()
        self._snapshot = _Snapshot(self.index.searcher())

    @property
    def size(self) -> int:
        """Passages in the index."""
        return self.searcher.num_docs

    def idf(self, token: str, searcher: tantivy.Searcher | None = None) -> float:
        """BM25's inverse document frequency of ``token`` (the highest for an unknown token)."""
        searcher = searcher or self.searcher
        total = max(searcher.num_docs, 1)
        df = searcher.doc_freq("body", token)
        return math.log(1 + (total - df + 0.5) / (df + 0.5))

    def search(self, tokens: list[str], k: int, title_boost: float) -> list[LexicalHit]:
        """The ``k`` best passages for the query ``tokens``."""
        counts = Counter(tokens)
        if not counts or k <= 0:
            return []
        snapshot = self._snapshot  # one snapshot, even if another thread reloads meanwhile
        searcher = snapshot.searcher
        clauses = []
        for token, count in counts.items():
            body = tantivy.Query.term_query(self.schema, "body", token)
            clauses.append((tantivy.Occur.Should, _boost(body, float(count))))
            if title_boost > 0:
                title = tantivy.Query.term_query(self.schema, "title", token)
                clauses.append((tantivy.Occur.Should, _boost(title, title_boost * count)))
        query = tantivy.Query.boolean_query(clauses)
        weights = {token: self.idf(token, searcher) * count for token, count in counts.items()}
        total = sum(weights.values()) or 1.0
        hits = []
        for score, address in searcher.search(query, k).hits:
            passage, body = snapshot.passage(address)
            coverage = sum(w for token, w in weights.items() if token in body) / total
            hits.append(LexicalHit(passage, float(score), coverage))
        return hits

    def get(self, pid: str) -> Passage | None:
        """The passage called ``pid``."""
        snapshot = self._snapshot
        query = tantivy.Query.term_query(self.schema, "pid", pid)
        found = snapshot.searcher.search(query, 1).hits
        if not found:
            return None
        return snapshot.passage(found[0][1])[0]


def _boost(query: tantivy.Query, factor: float) -> tantivy.Query:
    return query if factor == 1.0 else tantivy.Query.boost_query(query, factor)


def _passage(doc: tantivy.Document) -> Passage:
    meta = json.loads(bytes(doc["meta"][0]))
    return Passage(
        pid=doc["pid"][0],
        path=meta["path"],
        title=meta["title"],
        text=meta["text"],
        language=meta["language"],
        position=meta["position"],
    )

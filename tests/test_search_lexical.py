"""BM25 over tantivy: hits with their coverage, passages kept in memory per snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.search import lexical
from bot.search.lexical import LexicalIndex
from bot.search.passages import Passage


def passage(path: str, position: int, text: str) -> Passage:
    return Passage(f"{path}#{position}", path, path.upper(), text, "en", position)


@pytest.fixture
def reads(monkeypatch) -> list[tuple[int, int]]:
    """The addresses read from tantivy's document store."""
    seen: list[tuple[int, int]] = []
    original = lexical._read

    def counting(searcher, segment: int, doc: int):
        seen.append((segment, doc))
        return original(searcher, segment, doc)

    monkeypatch.setattr(lexical, "_read", counting)
    return seen


@pytest.fixture
def index(tmp_path: Path) -> LexicalIndex:
    built = LexicalIndex(tmp_path / "lexical")
    with built.writing() as batch:
        batch.add(passage("tea", 0, "green tea at eighty degrees"), ["green", "tea", "degrees"],
                  ["tea"])
        batch.add(passage("tea", 1, "black tea boils"), ["black", "tea", "boils"], ["tea"])
        batch.add(passage("milk", 0, "milk boils over"), ["milk", "boils"], ["milk"])
    return built


def test_hits_carry_their_passage_and_coverage(index: LexicalIndex) -> None:
    hits = index.search(["green", "tea", "unknown"], 5, title_boost=0.5)
    assert [hit.passage.pid for hit in hits] == ["tea#0", "tea#1"]
    assert hits[0].passage == passage("tea", 0, "green tea at eighty degrees")
    assert hits[0].coverage > hits[1].coverage > 0
    assert index.get("milk#0") == passage("milk", 0, "milk boils over")
    assert index.get("nothing#0") is None


def test_a_passage_is_read_from_the_store_once_per_snapshot(index: LexicalIndex, reads) -> None:
    index.reload()  # a snapshot that reads through the counter
    first = index.search(["tea", "boils"], 5, title_boost=0.5)
    assert len(reads) == 3
    again = index.search(["tea", "boils"], 5, title_boost=0.5)
    assert again == first and len(reads) == 3
    assert index.get("tea#1") == passage("tea", 1, "black tea boils") and len(reads) == 3


def test_a_reload_sees_changed_passages(index: LexicalIndex, reads) -> None:
    index.search(["milk"], 5, title_boost=0.5)
    with index.writing() as batch:
        batch.delete("milk")
        batch.add(passage("milk", 0, "milk curdles"), ["milk", "curdles"], ["milk"])
    hits = index.search(["milk"], 5, title_boost=0.5)
    assert [hit.passage.text for hit in hits] == ["milk curdles"]

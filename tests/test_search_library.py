"""The library end to end: open, answer, refresh, problems, persisted index (lexical path)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bot.search import Answer, Library
from bot.search.excerpt import TEXT_LIMIT

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """The project's search config with the dense path off (fast, and the lexical path alone)."""
    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config" / "search", folder / "search")
    text = (ROOT / "config" / "search.yaml").read_text(encoding="utf-8")
    (folder / "search.yaml").write_text(text.replace("enabled: true", "enabled: false"), "utf-8")
    return folder


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A copy of the account's articles, free to edit."""
    folder = tmp_path / "content"
    shutil.copytree(ROOT / "content", folder)
    return folder


@pytest.fixture
def library(content_dir: Path, config_dir: Path, tmp_path: Path) -> Library:
    return Library.open(content_dir, config_dir, tmp_path / "cache")


def write(path: Path, title: str, body: str) -> None:
    path.write_text(f"---\ntitle: {title}\n---\n{body}\n", encoding="utf-8")


def edit_unseen(target: Path, old: str, new: str) -> os.stat_result:
    """Replace ``old`` by ``new`` in ``target`` keeping its times: what ``stat`` sees before."""
    stat = target.stat()
    target.write_text(target.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return stat


def test_wechat_gets_an_excerpt_naming_its_article(library: Library) -> None:
    answer = library.answer("微信")
    assert answer.found
    assert answer.title in answer.text
    assert "微信" in answer.text.lower() or "wechat" in answer.text.lower()


def test_values_question_quotes_the_values_talk(library: Library) -> None:
    answer = library.answer("微信公众平台的价值观是什么")
    assert answer.found and answer.language == "zh"
    assert answer.title == "微信公开课演讲：微信对产品和公众平台的价值观"
    assert "价值观" in answer.text


@pytest.mark.parametrize("question", ["明天股票会涨吗", "where is the best pizza in Rome"])
def test_off_topic_questions_get_an_honest_nothing(library: Library, question: str) -> None:
    answer = library.answer(question)
    assert not answer.found
    assert answer.language == library.language_of(question)
    assert any(title in answer.text for title in library.titles())


def test_nothing_is_said_in_the_questions_language(library: Library) -> None:
    assert "抱歉" in library.answer("明天股票会涨吗").text
    assert "Sorry" in library.answer("where is the best pizza in Rome").text


def test_more_gives_the_next_passage_then_says_there_is_no_more(library: Library) -> None:
    seen = []
    answer = library.answer("微信")
    skip = 0
    while answer.found and skip < 300:  # a one-word question can match most passages
        seen.append(answer.text)
        assert answer.has_more == library.answer("微信", skip + 1).found
        skip += 1
        answer = library.answer("微信", skip)
    assert len(seen) >= 2
    assert len(set(seen)) == len(seen)
    assert not answer.found and answer.text


def test_status_counts_articles_and_passages(library: Library) -> None:
    status = library.status()
    assert status == {"ready": True, "articles": 5, "passages": status["passages"], "problems": []}
    assert status["passages"] > 50


def test_a_broken_file_is_reported_and_the_rest_still_load(
    content_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    (content_dir / "broken.md").write_text("---\ntitle: [unclosed\n---\ntext\n", "utf-8")
    (content_dir / "latin1.txt").write_bytes("Titre\ncaf\xe9".encode("latin-1"))
    library = Library.open(content_dir, config_dir, tmp_path / "cache")
    problems = library.status()["problems"]
    assert len(problems) == 2
    assert problems[0].startswith("broken.md, line 2: front matter is not valid YAML")
    assert problems[1].startswith("latin1.txt, line 2: not UTF-8") and "fix:" in problems[1]
    assert library.status()["articles"] == 5


def test_added_edited_and_removed_files_are_picked_up(library: Library, content_dir: Path) -> None:
    assert not library.refresh()
    new = content_dir / "koalas.md"  # a subject no article touches (熊猫直播 is in one)
    write(new, "考拉", "考拉每天要吃很多桉树叶。考拉住在澳大利亚的树上。")
    assert library.refresh()
    assert library.answer("考拉吃什么").title == "考拉"
    write(new, "考拉", "考拉一天要睡二十个小时。")
    os.utime(new, ns=(1, 1))  # a different mtime even on coarse clocks
    assert library.refresh()
    assert "二十个小时" in library.answer("考拉").text
    new.unlink()
    assert library.refresh()
    assert not library.answer("考拉").found
    assert "考拉" not in library.titles()


def test_a_second_process_reuses_the_persisted_index(
    library: Library, content_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    again = Library.open(content_dir, config_dir, tmp_path / "cache")
    assert again.status() == library.status()
    write(content_dir / "tea.txt", "ignored", "")  # a .txt is "title line + text"
    (content_dir / "tea.txt").write_text("Green tea\nGreen tea is brewed at 80 degrees.\n", "utf-8")
    assert library.refresh()
    assert again.refresh()  # sees the file the first process indexed
    assert again.answer("how hot should green tea be brewed").title == "Green tea"


def test_a_reload_request_makes_refresh_rescan(
    content_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    generation = {"value": "1"}
    library = Library.open(content_dir, config_dir, tmp_path / "cache", lambda: generation["value"])
    target = content_dir / "wechat-self-media-way-of-life.md"
    stat = edit_unseen(target, "way of life", "manner of living")
    if target.stat().st_size == stat.st_size:  # same size and time: only a rescan can tell
        assert not library.refresh()
    generation["value"] = "2"
    library.refresh()
    assert "manner of living" in library.answer("manner of living").text


def test_every_reply_fits_the_text_limit(library: Library, content_dir: Path) -> None:
    long = "这是一句很长的话，" * 400 + "结束。"
    write(content_dir / "long.md", "很长的文章" * 60, long)
    library.refresh()
    answer = library.answer("很长的话")
    assert answer.found
    assert len(answer.text.encode("utf-8")) <= TEXT_LIMIT
    assert isinstance(answer, Answer)


def test_request_reload_reaches_every_library_sharing_the_cache(
    library: Library, content_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    other = Library.open(content_dir, config_dir, tmp_path / "cache")
    assert not other.refresh()
    library.request_reload()
    assert other._stat_content() != other._snapshot  # the stamp moved: a forced rescan is due
    other.refresh()
    assert not other.refresh()


def test_answers_pick_up_a_new_file_by_themselves(
    content_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    library = Library.open(content_dir, config_dir, tmp_path / "cache")
    library._last_look -= 60  # as if refresh_seconds had passed
    write(content_dir / "owls.md", "猫头鹰", "猫头鹰在夜里捕捉老鼠。")
    assert library.answer("猫头鹰吃什么").title == "猫头鹰"


def test_answers_stay_whole_while_another_thread_reindexes(
    library: Library, content_dir: Path
) -> None:
    import threading

    errors: list[BaseException] = []

    def ask() -> None:
        try:
            for _ in range(40):
                assert library.answer("微信公众平台的价值观是什么").found
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for n in range(5):
        write(content_dir / "churn.md", f"变动{n}", f"第{n}次改动的文章内容在这里。")
        library.refresh(force=True)
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.fixture
def rankings(library: Library, monkeypatch) -> list[tuple[str, int]]:
    """The rankings the library actually computes (not read from its memo)."""
    computed: list[tuple[str, int]] = []
    original = library._rank_now

    def counting(query: str, k: int, changes: int):
        computed.append((query, k))
        return original(query, k, changes)

    monkeypatch.setattr(library, "_rank_now", counting)
    return computed


def test_a_repeated_question_is_ranked_once(library: Library, rankings) -> None:
    first = library.answer("微信公众平台的价值观是什么")
    terms = library.terms("微信公众平台的价值观是什么")
    assert library.answer("微信公众平台的价值观是什么") == first
    assert library.terms("微信公众平台的价值观是什么") == terms
    assert rankings == [("微信公众平台的价值观是什么", 2)]
    hits = library.search("微信公众平台的价值观是什么", 3)
    hits.clear()  # a caller's list is its own
    assert library.search("微信公众平台的价值观是什么", 3)
    assert len(rankings) == 2  # k is part of the key


def test_kept_rankings_are_forgotten_when_content_changes(
    library: Library, content_dir: Path, rankings
) -> None:
    assert not library.answer("考拉吃什么").found
    write(content_dir / "koalas.md", "考拉", "考拉每天要吃很多桉树叶。")
    assert library.refresh()
    assert library.answer("考拉吃什么").title == "考拉"
    assert len(rankings) == 2


def test_kept_rankings_are_forgotten_on_a_reload_request(
    content_dir: Path, config_dir: Path, tmp_path: Path
) -> None:
    generation = {"value": "1"}
    library = Library.open(content_dir, config_dir, tmp_path / "cache", lambda: generation["value"])
    target = content_dir / "wechat-self-media-way-of-life.md"
    def quoted() -> bool:  # a passage holds the phrase ("nothing on that" echoes questions)
        return any("manner of living" in hit.text for hit in library.search("manner of living"))

    assert not quoted()
    edit_unseen(target, "way of life", "manner of living")
    generation["value"] = "2"  # `content reload`
    library.refresh()
    assert quoted()


def test_kept_rankings_are_forgotten_when_the_search_config_changes(
    library: Library, config_dir: Path
) -> None:
    assert library.answer("微信公众平台的价值观是什么").found
    search = config_dir / "search.yaml"
    text = search.read_text(encoding="utf-8")
    search.write_text(text.replace("lexical_threshold: 0.30", "lexical_threshold: 1.0"), "utf-8")
    library.refresh()
    assert not library.answer("微信公众平台的价值观是什么").found  # the kept answer is gone


def test_a_ranking_made_without_its_late_model_is_not_kept(library: Library, monkeypatch) -> None:
    calls: list[str] = []

    def late(query: str, k: int, changes: int):
        calls.append(query)
        return [], 0.0, False

    monkeypatch.setattr(library, "_rank_now", late)
    library.search("微信", 2)
    library.search("微信", 2)
    assert calls == ["微信", "微信"]

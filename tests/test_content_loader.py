"""The content loader: front matter, .txt files, and a clear problem for each broken file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.search.content import Article, Problem, load_folder, parse

ROOT = Path(__file__).resolve().parent.parent


def test_the_accounts_articles_all_load() -> None:
    loaded = load_folder(ROOT / "content")
    assert loaded.problems == []
    assert len(loaded.articles) == 5
    assert {a.language for a in loaded.articles} == {"zh", "en"}
    assert all(a.title for a in loaded.articles)
    # a source is shown to subscribers as a link: none of ours has a public one
    assert all(a.source == "" or a.source.startswith("https://") for a in loaded.articles)


def test_front_matter_fields_are_read() -> None:
    article = parse(
        "a.md",
        "---\ntitle: 标题\nlanguage: zh\ntags: [微信, 产品]\nsource: x\n"
        "date: 2016-01-11\n---\n正文。\n".encode(),
    )
    assert isinstance(article, Article)
    assert (article.title, article.tags, article.date, article.body) == (
        "标题", ("微信", "产品"), "2016-01-11", "正文。"
    )


def test_a_txt_file_has_its_title_on_the_first_line() -> None:
    article = parse("b.txt", b"\nGreen tea\nBrew it at 80 degrees.\n")
    assert isinstance(article, Article)
    assert (article.title, article.body, article.language) == (
        "Green tea", "Brew it at 80 degrees.", "en"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"no front matter", "c.md, line 1: no front matter (fix:"),
        (b"---\ntitle: x\n", "c.md, line 1: the front matter is not closed (fix:"),
        (b"---\ntitle: [x\n---\nbody", "c.md, line 2: front matter is not valid YAML"),
        (b"---\ntags: [a]\n---\nbody", "c.md, line 2: no title (fix:"),
        (b"---\ntitle: x\nauthor: y\n---\nbody", "c.md, line 3: unknown key 'author' (fix:"),
        (b"---\ntitle: x\nlanguage: fr\n---\nbody", "c.md, line 3: language 'fr' is not known"),
        (b"---\ntitle: x\ndate: soon\n---\nbody", "c.md, line 3: date 'soon' is not a date"),
        (b"---\ntitle: x\n---\n", "c.md, line 3: no text after the front matter"),
        (b"---\ntitle: x\n---\n\n\xff\xfe", "c.md, line 5: not UTF-8 text"),
    ],
)
def test_a_broken_file_names_line_problem_and_fix(data: bytes, expected: str) -> None:
    problem = parse("c.md", data)
    assert isinstance(problem, Problem)
    assert str(problem).startswith(expected)
    assert "(fix: " in str(problem)


def test_hidden_files_and_other_suffixes_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".draft.md").write_text("junk", encoding="utf-8")
    (tmp_path / "notes.docx").write_bytes(b"junk")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ok.txt").write_text("Title\ntext\n", encoding="utf-8")
    loaded = load_folder(tmp_path)
    assert [a.path for a in loaded.articles] == ["sub/ok.txt"] and loaded.problems == []

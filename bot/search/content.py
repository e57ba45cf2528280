"""The account's articles as operators keep them: ``content/**/*.md`` and ``content/**/*.txt``.

A Markdown file starts with YAML front matter between ``---`` lines::

    ---
    title: 微信的价值观          # required
    language: zh               # zh or en (guessed from the text when missing)
    tags: [微信, 产品]
    source: https://example.com/original
    date: 2016-01-11
    ---
    The article text...

A ``.txt`` file has its title on the first line and the text below. A file that cannot be used
is reported as ``<path>, line N: problem (fix: ...)`` and the others still load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.search.analyzer import language_of

SUFFIXES = (".md", ".txt")
"""The kinds of file read as articles."""

FIELDS = ("title", "language", "tags", "source", "date")
"""The front-matter keys an article may have."""


@dataclass(frozen=True)
class Article:
    """One article: its text and what the front matter says about it."""

    path: str
    """Relative to the content folder, with forward slashes."""
    title: str
    body: str
    language: str = "zh"
    tags: tuple[str, ...] = ()
    source: str = ""
    date: str = ""
    digest: str = ""
    """SHA-256 of the file's bytes."""


@dataclass(frozen=True)
class Problem:
    """Why one file was not loaded."""

    path: str
    problem: str
    fix: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.problem} (fix: {self.fix})"


@dataclass
class Loaded:
    """The articles of a folder and the files that were left out."""

    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def content_files(folder: Path) -> list[Path]:
    """Every article file under ``folder``, sorted; hidden files and folders are skipped."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found)


def load_folder(folder: Path) -> Loaded:
    """Load every article under ``folder``; broken files become problems."""
    loaded = Loaded()
    for path in content_files(folder):
        result = load_file(path, folder)
        if isinstance(result, Problem):
            loaded.problems.append(result)
        else:
            loaded.articles.append(result)
    return loaded


def load_file(path: Path, folder: Path) -> Article | Problem:
    """One article, or the problem that keeps it out."""
    name = path.relative_to(folder).as_posix()
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Problem(name, f"cannot be read: {exc.strerror}", "check the file's permissions")
    return parse(name, data)


def parse(name: str, data: bytes) -> Article | Problem:
    """Parse the bytes of the file called ``name`` (relative path)."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return Problem(name, f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8", line)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if name.lower().endswith(".txt"):
        return _parse_txt(name, text, digest)
    return _parse_markdown(name, text, digest)


def _parse_txt(name: str, text: str, digest: str) -> Article | Problem:
    lines = text.split("\n")
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return Problem(name, "the file is empty", "write a title line and the article below it")
    title = lines[first].strip()
    body = "\n".join(lines[first + 1 :]).strip()
    if not body:
        return Problem(
            name, "only a title, no text", "write the article below the title line", first + 1
        )
    return Article(name, title, body, language_of(body), digest=digest)


def _parse_markdown(name: str, text: str, digest: str) -> Article | Problem:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return Problem(
            name, "no front matter", "start the file with a '---' line, 'title: ...' and '---'", 1
        )
    end = next((n for n in range(1, len(lines)) if lines[n].strip() == "---"), None)
    if end is None:
        return Problem(name, "the front matter is not closed", "add a '---' line after it", 1)
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark else 2
        problem = getattr(exc, "problem", None) or "invalid YAML"
        return Problem(name, f"front matter is not valid YAML: {problem}", "use 'key: value'", line)
    if not isinstance(meta, dict):
        return Problem(name, "front matter is not a mapping", "write 'key: value' lines", 2)

    def line_of(key: str) -> int:
        return next(
            (n + 1 for n in range(1, end) if lines[n].split(":", 1)[0].strip() == key), 2
        )

    unknown = [key for key in meta if key not in FIELDS]
    if unknown:
        return Problem(
            name, f"unknown key {unknown[0]!r}", f"use only {', '.join(FIELDS)}",
            line_of(unknown[0]),
        )
    title = meta.get("title")
    if not isinstance(title, str | int | float) or not str(title).strip():
        return Problem(name, "no title", "add 'title: <the article's title>'", line_of("title"))
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        return Problem(name, "no text after the front matter", "write the article", end + 1)
    language = meta.get("language") or language_of(body)
    if language not in ("zh", "en"):
        return Problem(
            name, f"language {language!r} is not known", "write 'language: zh' or 'language: en'",
            line_of("language"),
        )
    tags = meta.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str | int) for t in tags):
        return Problem(
            name, "tags must be a list of words", "write 'tags: [a, b]'", line_of("tags")
        )
    date = meta.get("date") or ""
    if isinstance(date, str) and date:
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            return Problem(
                name, f"date {date!r} is not a date", "write 'date: YYYY-MM-DD'", line_of("date")
            )
    return Article(
        path=name,
        title=str(title).strip(),
        body=body,
        language=language,
        tags=tuple(str(t) for t in tags),
        source=str(meta.get("source") or ""),
        date=str(date),
        digest=digest,
    )

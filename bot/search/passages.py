"""Passages: windows of one to three sentences that search ranks and replies quote.

Sentences end at Chinese ``。！？；…`` (with any closing quote) and at English ``. ! ?`` followed
by a space; a line break ends a paragraph. A window never crosses a paragraph unless the
paragraph is too short to stand alone (a heading joins the text after it). Windows overlap by one
sentence, so an answer split across two windows is still whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.search.content import Article

SENTENCE_END = re.compile(
    r"(?<=[。！？!?；;…])[”’」』）)\"']*\s*"  # Chinese (and any) terminal punctuation
    r"|(?<=[.])[”’\"')]*\s+(?=\S)"  # English full stop followed by a space
)
SHORT_PARAGRAPH = 40
"""A paragraph of fewer characters (a heading) is joined to the one after it."""


@dataclass(frozen=True)
class Passage:
    """A window of sentences from one article."""

    pid: str
    """``<path>#<n>``: unique in the library."""
    path: str
    title: str
    text: str
    language: str
    position: int


def sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph, each with its end punctuation."""
    parts = [p.strip() for p in SENTENCE_END.split(paragraph)]
    return [p for p in parts if p]


def _join(parts: list[str]) -> str:
    text = ""
    for part in parts:
        if text and (text[-1].isascii() or part[0].isascii()):
            text += " "
        text += part
    return text


def _paragraphs(body: str) -> list[list[str]]:
    """Paragraphs as lists of sentences, short ones merged into the next."""
    merged: list[list[str]] = []
    carry: list[str] = []
    for line in body.split("\n"):
        found = sentences(line.strip())
        if not found:
            continue
        found = carry + found
        carry = []
        if sum(len(s) for s in found) < SHORT_PARAGRAPH:
            carry = found
            continue
        merged.append(found)
    if carry:
        if merged:
            merged[-1].extend(carry)
        else:
            merged.append(carry)
    return merged


def windows(article: Article, max_sentences: int = 3, max_chars: int = 360) -> list[Passage]:
    """Cut ``article`` into overlapping windows of at most ``max_sentences`` / ``max_chars``."""
    found: list[Passage] = []
    for paragraph in _paragraphs(article.body):
        start = 0
        while start < len(paragraph):
            end = start + 1
            size = len(paragraph[start])
            while (
                end < len(paragraph)
                and end - start < max_sentences
                and size + len(paragraph[end]) <= max_chars
            ):
                size += len(paragraph[end])
                end += 1
            text = _join(paragraph[start:end])
            found.append(
                Passage(
                    pid=f"{article.path}#{len(found)}",
                    path=article.path,
                    title=article.title,
                    text=text,
                    language=article.language,
                    position=len(found),
                )
            )
            if end >= len(paragraph):
                break
            start = end - 1 if end - start > 1 else end
    return found

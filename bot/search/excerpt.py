"""The reply a subscriber reads: a quoted passage naming its article, or an honest "nothing".

Every text fits the platform's 2048-byte limit for a text message; a passage too long for it is
cut at a sentence end (or, for one endless sentence, at a comma, marked with an ellipsis).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.search.passages import sentences

TEXT_LIMIT = 2048
"""Bytes of UTF-8 in one text reply (PLATFORM.md section 4)."""

QUESTION_ECHO = 40
"""Characters of the question repeated in a "nothing on that" reply."""

CLAUSE_END = re.compile(r"(?<=[，,、：:])")


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def trim(text: str, budget: int) -> str:
    """``text`` cut to at most ``budget`` UTF-8 bytes at a sentence (else clause) boundary."""
    if _size(text) <= budget:
        return text
    kept = ""
    for sentence in sentences(text):
        joined = f"{kept} {sentence}" if kept and sentence[0].isascii() else kept + sentence
        if _size(joined) > budget:
            break
        kept = joined
    if kept:
        return kept
    budget -= _size("…")
    for clause in CLAUSE_END.split(text):
        if _size(kept + clause) > budget:
            break
        kept += clause
    if not kept:  # no comma either: cut by characters
        kept = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return kept.rstrip() + "…"


def quote(text: str, title: str, language: str, has_more: bool) -> str:
    """A passage in quotes, the article's title, and the "more" hint when there is more."""
    if language == "zh":
        source = f"\n——《{title}》"
        more = "\n回复「更多」看下一段。" if has_more else ""
        opening, closing = "「", "」"
    else:
        source = f"\n— from “{title}”"
        more = "\nReply 'more' for the next passage." if has_more else ""
        opening, closing = "“", "”"
    frame = _size(opening + closing + source + more)
    if frame > TEXT_LIMIT // 2:  # an absurdly long title: shorten it, keep the passage
        source = trim(source, TEXT_LIMIT // 2 - _size(opening + closing + more))
        frame = _size(opening + closing + source + more)
    return opening + trim(text, TEXT_LIMIT - frame) + closing + source + more


def nothing(question: str, language: str, titles: Sequence[str]) -> str:
    """The "nothing on that" reply, suggesting ``titles``."""
    echo = question.strip().replace("\n", " ")
    if len(echo) > QUESTION_ECHO:
        echo = echo[:QUESTION_ECHO] + "…"
    if language == "zh":
        text = f"抱歉，文章里没有找到关于「{echo}」的内容。"
        if titles:
            text += "\n可以看看这些文章：\n" + "\n".join(f"《{t}》" for t in titles)
    else:
        text = f"Sorry, our articles have nothing on “{echo}”."
        if titles:
            text += "\nYou might like:\n" + "\n".join(f"- {t}" for t in titles)
    return trim(text, TEXT_LIMIT)


def no_more(language: str) -> str:
    """The reply to "more" when every relevant passage has been sent."""
    if language == "zh":
        return "关于这个问题没有更多内容了。换个问法试试？"
    return "That is all our articles say on it. Try asking another way?"

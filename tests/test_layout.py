"""The house rules, read from the code: one composition root, the product apart from the simulator,
and a repository that stands alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot.settings import ROOT

BOT = ROOT / "bot"

PRODUCT = sorted(
    p for p in BOT.rglob("*.py") if "simulator" not in p.relative_to(BOT).parts
)
"""Every module of the product: everything but the simulator."""

BUILDERS = {
    "Settings.from_env": "settings from the environment",
    "load_config": "the operators' config",
    "connect": "a Redis client",
    "open_library": "the content library",
    "Library.open": "the content library",
    "WeChatApi": "the API client",
    "WeChatApi.from_settings": "the API client",
}
"""Calls that build a part of the bot, and what they build."""

ALLOWED_BUILDERS = {
    "bot/services.py": set(BUILDERS),  # the composition root
    "bot/cli.py": {"Settings.from_env"},  # the command line's environment, checked once
    "bot/settings.py": {"Settings.from_env"},
    "bot/search/service.py": {"Library.open"},  # what open_library is
    "bot/state/embedded.py": {"connect"},  # state.running(): is the server up? (never starts one)
    "bot/state/connection.py": {"connect"},  # where connect() is; a connection's own reconnect
}


def imports_of(path: Path) -> set[str]:
    """Modules ``path`` imports, at any depth (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def calls_of(path: Path) -> set[str]:
    """Dotted names ``path`` calls (``a.b(...)`` -> ``a.b``, ``f(...)`` -> ``f``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                base = func.value
                names.add(f"{base.id}.{func.attr}" if isinstance(base, ast.Name) else func.attr)
                names.add(func.attr)
    return names


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_product_never_imports_the_simulator(path: Path) -> None:
    assert not [m for m in imports_of(path) if m.startswith("bot.simulator")]


@pytest.mark.parametrize("path", sorted(BOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_composition_root_builds_the_bot(path: Path) -> None:
    name = path.relative_to(ROOT).as_posix()
    allowed = ALLOWED_BUILDERS.get(name, set())
    built = sorted((calls_of(path) & set(BUILDERS)) - allowed)
    assert not built, f"{name} builds {', '.join(BUILDERS[b] for b in built)}: use bot.services"


def test_nothing_reads_outside_the_repository() -> None:
    tracked = [
        p
        for folder in ("bot", "tests", "bench", "scripts", "content", "config", ".ci")
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and p.suffix in ("", ".py", ".md", ".yaml", ".txt", ".sh", ".lua")
        and "data" not in p.relative_to(ROOT).parts[:2]
    ]
    # the team's folder beside the checkout, named without writing its path here: this file
    # must not be an offender of its own check
    outside = ("/".join(("..", "shared")), "/".join(("shared", "seeds")))
    offenders = [
        str(p.relative_to(ROOT))
        for p in tracked
        if any(name in p.read_text("utf-8", "replace") for name in outside)
    ]
    assert offenders == []

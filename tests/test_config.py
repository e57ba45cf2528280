"""The config loader: the project's files load, and every mistake names file, line, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config
from bot.settings import ROOT


def test_project_config_loads() -> None:
    config = load_config(ROOT / "config")
    assert config.account.welcome
    assert config.menu.click("VALUES") is not None
    assert 1 <= len(config.menu.buttons) <= 3


def test_missing_files_mean_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.push.limits.per_day == 1 and config.push.limits.per_week == 3
    assert config.webhook.deadline_seconds == 4.0


def test_frozen(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    with pytest.raises(ValueError):
        config.account.name = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "text", "line", "needle"),
    [
        ("account.yaml", "name: x\ntimezone: Mars/Olympus\n", 2, "unknown time zone"),
        ("account.yaml", "name: x\nwelcom: hi\n", 2, "welcom"),
        ("account.yaml", "type: enterprise\n", 1, "subscription or service"),
        ("account.yaml", "name: [unclosed\n", 2, "not valid YAML"),
        ("account.yaml", "- just\n- a list\n", 1, "mapping"),
        (
            "replies.yaml",
            "replies:\n  - match: regex\n    pattern: '(('\n    reply: x\n",
            2,
            "regular expression",
        ),
        (
            "replies.yaml",
            "replies:\n  - match: fuzzy\n    pattern: a\n    reply: b\n",
            2,
            "exact, contains or regex",
        ),
        (
            "menu.yaml",
            "buttons:\n"
            + "".join(f"  - name: b{i}\n    key: K{i}\n    action: help\n" for i in range(4)),
            1,
            "3 top-level",
        ),
        (
            "menu.yaml",
            "buttons:\n  - name: 这个名字实在是太长了\n    key: K\n    action: help\n",
            1,
            "16 bytes",
        ),
        (
            "menu.yaml",
            "buttons:\n  - name: a\n    type: click\n    action: help\n",
            2,
            "needs a key",
        ),
        (
            "menu.yaml",
            "buttons:\n  - name: g\n    type: group\n    sub_buttons:\n"
            + "".join(
                f"      - name: s{i}\n        key: S{i}\n        action: help\n" for i in range(6)
            ),
            2,
            "5 sub_buttons",
        ),
        ("webhook.yaml", "deadline_seconds: 9\n", 1, "less than or equal to 4.8"),
        ("push.yaml", "limits:\n  per_day: 3\n  per_week: 2\n", 2, "per_week"),
    ],
)
def test_mistakes_are_located(tmp_path: Path, name: str, text: str, line: int, needle: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    error = caught.value
    assert error.path == tmp_path / name
    assert error.line == line, str(error)
    assert needle in str(error)


def test_non_utf8_is_named(tmp_path: Path) -> None:
    (tmp_path / "account.yaml").write_bytes("name: 微信".encode("gbk"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path)


def test_keyword_rules_match() -> None:
    replies = load_config(ROOT / "config").replies.replies
    assert any(rule.matches("Thanks!") for rule in replies)
    assert not any(rule.matches("thanks for nothing, what is WeChat") for rule in replies)

"""`python -m bot search` and `content check|reload`, and how a reload reaches other processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fakeredis
import pytest
from click.testing import CliRunner

from bot.search import Library
from bot.search.commands import content, search
from bot.search.service import generation_reader, open_library, request_reload
from bot.settings import Settings
from bot.state import Keys

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A bot folder: the project's content, config with the dense path off, a data folder."""
    shutil.copytree(ROOT / "content", tmp_path / "content")
    shutil.copytree(ROOT / "config" / "search", tmp_path / "config" / "search")
    text = (ROOT / "config" / "search.yaml").read_text(encoding="utf-8")
    (tmp_path / "config" / "search.yaml").write_text(
        text.replace("enabled: true", "enabled: false"), encoding="utf-8"
    )
    return {
        "BOT_CONTENT_DIR": str(tmp_path / "content"),
        "BOT_CONFIG_DIR": str(tmp_path / "config"),
        "BOT_DATA_DIR": str(tmp_path / "var"),
        "REDIS_URL": "",
    }


def test_search_prints_ranked_passages_with_scores_and_sources(env: dict[str, str]) -> None:
    result = CliRunner().invoke(search, ["微信公众平台的价值观是什么", "-k", "2"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("1. ")
    assert "wechat-values-open-class.md" in result.output
    assert "reply (found" in result.output


def test_search_json(env: dict[str, str]) -> None:
    result = CliRunner().invoke(search, ["what is an alliance chain", "--json"], env=env)
    data = json.loads(result.output)
    assert 1 <= len(data["hits"]) <= 5
    assert {"score", "title", "source", "text", "language"} <= set(data["hits"][0])
    assert data["answer"]["found"] and data["answer"]["language"] == "en"


def test_content_check_passes_on_the_accounts_articles(env: dict[str, str]) -> None:
    result = CliRunner().invoke(content, ["check"], env=env)
    assert result.exit_code == 0
    assert "5 articles loaded, 0 problems" in result.output


def test_content_check_lists_problems_and_exits_1(env: dict[str, str]) -> None:
    Path(env["BOT_CONTENT_DIR"], "broken.md").write_text("no front matter\n", encoding="utf-8")
    result = CliRunner().invoke(content, ["check"], env=env)
    assert result.exit_code == 1
    assert "broken.md, line 1: no front matter (fix:" in result.output


def test_content_check_reports_a_broken_synonyms_file(env: dict[str, str]) -> None:
    Path(env["BOT_CONFIG_DIR"], "search", "synonyms.yaml").write_text(
        "groups:\n  - [only-one]\n", encoding="utf-8"
    )
    result = CliRunner().invoke(content, ["check"], env=env)
    assert result.exit_code == 1
    assert "synonyms.yaml, line 2, key groups: group 0 needs at least two" in result.output


def test_content_reload_without_redis_still_reindexes(env: dict[str, str]) -> None:
    result = CliRunner().invoke(content, ["reload"], env=env)
    assert result.exit_code == 0, result.output
    assert "5 articles" in result.output and "Redis not reachable" in result.output


def test_a_reload_request_reaches_a_running_library(env: dict[str, str]) -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    settings = Settings.from_env(env)
    library = open_library(settings, client)
    assert isinstance(library, Library) and not library.refresh()
    assert request_reload(client) == 1
    assert client.get(Keys.content_generation()) == "1"
    library.refresh()  # rescans every file (hashing them) because the generation moved
    assert not library.refresh()


def test_generation_reader_survives_a_lost_redis() -> None:
    client = fakeredis.FakeRedis(decode_responses=True)
    read = generation_reader(client)
    assert read is not None and read() is None
    client.connected = False
    assert read() is None
    assert generation_reader(None) is None

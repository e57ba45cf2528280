"""Settings from the environment: defaults for development, clear errors for typos."""

from __future__ import annotations

import pytest

from bot.settings import DEV_TOKEN, Settings, SettingsError


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings.token == DEV_TOKEN and settings.mode == "plain" and settings.redis_url is None


def test_environment_is_read() -> None:
    settings = Settings.from_env(
        {
            "WECHAT_TOKEN": "abc123",
            "WECHAT_MODE": "SAFE",
            "REDIS_URL": "redis://h:1/0",
            "WECHAT_API_BASE": "http://x:1/",
        }
    )
    assert (settings.token, settings.mode, settings.redis_url) == (
        "abc123",
        "safe",
        "redis://h:1/0",
    )
    assert settings.api_base == "http://x:1"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WECHAT_MODE", "aes", "WECHAT_MODE"),
        ("WECHAT_TOKEN", "has space", "WECHAT_TOKEN"),
        ("WECHAT_TOKEN", "x" * 33, "WECHAT_TOKEN"),
        ("WECHAT_AES_KEY", "short", "WECHAT_AES_KEY"),
        ("WECHAT_API_BASE", "ftp://x", "WECHAT_API_BASE"),
        ("BOT_CONFIG_DIR", "/nonexistent/dir", "BOT_CONFIG_DIR"),
    ],
)
def test_bad_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})

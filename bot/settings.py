"""Deployment values and secrets, read from the environment once at start-up.

Every name has a development default so ``make run`` needs no environment at all; production sets
``WECHAT_TOKEN``, ``WECHAT_APPID``, ``WECHAT_APPSECRET``, ``WECHAT_AES_KEY`` and ``WECHAT_MODE``.
Values are checked here, so a typo stops start-up with the variable named, not a 500 later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The project folder: defaults for content/, config/ and var/ are relative to it."""

MODES = ("plain", "compat", "safe")
"""Message modes of the account's server configuration: plaintext, compatible, safe (AES)."""

DEV_TOKEN = "devtoken"
DEV_APPID = "wx0123456789abcdef"
DEV_APPSECRET = "devsecret0123456789abcdef0123456"
DEV_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
DEV_API_BASE = "http://127.0.0.1:8701"
"""The simulator's fake WeChat API, where development sends outbound calls."""

ADMIN_TOKEN_MIN = 32
"""The shortest ``BOT_ADMIN_TOKEN`` accepted (too long to guess, even without the rate limit)."""


class SettingsError(ValueError):
    """An environment variable holds a value the bot cannot use."""


@dataclass(frozen=True)
class Settings:
    """Everything the environment decides."""

    token: str = DEV_TOKEN
    appid: str = DEV_APPID
    appsecret: str = DEV_APPSECRET
    aes_key: str = DEV_AES_KEY
    mode: str = "plain"
    api_base: str = DEV_API_BASE
    redis_url: str | None = None
    data_dir: Path = ROOT / "var"
    config_dir: Path = ROOT / "config"
    content_dir: Path = ROOT / "content"
    admin_token: str | None = field(default=None, repr=False)
    """``BOT_ADMIN_TOKEN``: the operator console's password; unset, the console is off."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and check the ``WECHAT_*`` and ``BOT_*`` variables."""
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            value = env.get(name, "").strip()
            return value or default

        settings = cls(
            token=get("WECHAT_TOKEN", DEV_TOKEN),
            appid=get("WECHAT_APPID", DEV_APPID),
            appsecret=get("WECHAT_APPSECRET", DEV_APPSECRET),
            aes_key=get("WECHAT_AES_KEY", DEV_AES_KEY),
            mode=get("WECHAT_MODE", "plain").lower(),
            api_base=get("WECHAT_API_BASE", DEV_API_BASE).rstrip("/"),
            redis_url=env.get("REDIS_URL", "").strip() or None,
            data_dir=Path(get("BOT_DATA_DIR", str(ROOT / "var"))),
            config_dir=Path(get("BOT_CONFIG_DIR", str(ROOT / "config"))),
            content_dir=Path(get("BOT_CONTENT_DIR", str(ROOT / "content"))),
            admin_token=env.get("BOT_ADMIN_TOKEN", "").strip() or None,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Raise :class:`SettingsError` naming the first variable that is wrong."""
        if not re.fullmatch(r"[A-Za-z0-9]{3,32}", self.token):
            raise SettingsError("WECHAT_TOKEN must be 3-32 letters or digits (the platform's rule)")
        if self.mode not in MODES:
            raise SettingsError(f"WECHAT_MODE must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not re.fullmatch(r"[A-Za-z0-9]{43}", self.aes_key):
            raise SettingsError("WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        if not self.appid:
            raise SettingsError("WECHAT_APPID must not be empty")
        if not re.match(r"https?://", self.api_base):
            raise SettingsError("WECHAT_API_BASE must be an http(s) URL")
        if self.admin_token is not None and not re.fullmatch(
            rf"[\x21-\x7e]{{{ADMIN_TOKEN_MIN},}}", self.admin_token
        ):
            raise SettingsError(
                f"BOT_ADMIN_TOKEN must be at least {ADMIN_TOKEN_MIN} printable ASCII characters "
                "without spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                "), or unset to turn the console off"
            )
        if not self.config_dir.is_dir():
            raise SettingsError(f"BOT_CONFIG_DIR {self.config_dir} is not a folder")

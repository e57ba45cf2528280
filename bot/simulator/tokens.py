"""The fake platform's access tokens: ``/cgi-bin/token``, ``/cgi-bin/stable_token`` and the check
every other call makes.

Rules simulated (both endpoints are open to every kind of account):

- ``/cgi-bin/token``: a new token retires the previous one after :data:`TOKEN_GRACE` s (then
  40001); a token lives :data:`TOKEN_LIFETIME` s (then 42001); :data:`TOKEN_DAILY_QUOTA` calls a
  day (then 45009).
- ``/cgi-bin/stable_token`` is kept apart from it: see :meth:`Tokens.stable`.
- wrong credentials: 40002 (``grant_type``), 40013 (``appid``), 40125 (``secret``); no token
  41001.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from bot import clock
from bot.simulator.errors import refused
from bot.simulator.quotas import DailyQuotas

TOKEN_LIFETIME = 7200
TOKEN_GRACE = 300
"""Seconds the previous token keeps working after a new one is issued."""
TOKEN_DAILY_QUOTA = 2000

# The stable token, from WeChat's getStableAccessToken pages
# (https://developers.weixin.qq.com/doc/service/api/base/api_getstableaccesstoken and the mini-game
# page https://developers.weixin.qq.com/minigame/dev/api-backend/open-api/access-token/auth.getStableAccessToken.html):
# "普通模式，access_token 有效期内重复调用该接口不会更新 access_token";
# "平台会提前5分钟更新access_token ... 新旧access_token都可用 ...
# 有效期至少为5分钟，即expires_in >= 300";
# "强制刷新模式，会导致上次获取的 access_token 失效"; "该模式限制每天20次 ...
# 请保证调用时间隔至少为30s，否则不会刷新"; "每天限制调用 50万 次";
# "与 getAccessToken 获取的调用凭证完全隔离，互不影响".
STABLE_RENEW = 300
"""Seconds of life left at which a normal-mode call issues a new stable token (the old one keeps
working until its own expiry), so every answer's ``expires_in`` is at least this."""
STABLE_DAILY_QUOTA = 500_000
STABLE_FORCE_PER_DAY = 20
"""Force refreshes a day. What the platform answers past it is not documented: the simulator
answers 45009 (the platform's daily-quota code), an assumption."""
STABLE_FORCE_GAP = 30
"""Seconds between two force refreshes; a sooner one does not refresh ("否则不会刷新"): it
answers the current stable token unchanged."""


class Tokens:
    """The access tokens of one account: who may get one, and which work now.

    ``quotas`` and ``lock`` are the platform's (its daily quotas and the lock over its state).
    """

    def __init__(self, appid: str, appsecret: str, quotas: DailyQuotas,
                 lock: threading.RLock) -> None:
        self.appid, self.appsecret = appid, appsecret
        self._quotas, self._lock = quotas, lock
        self._until: dict[str, float] = {}  # token -> when it stops working
        self._current = ""  # the newest /cgi-bin/token
        self._stable = ""  # the current stable token
        self._stable_forced_at = -1e18

    def _check_credentials(self, grant_type: Any, appid: Any, secret: Any) -> None:
        if grant_type != "client_credential":
            raise refused(40002)
        if appid != self.appid:
            raise refused(40013)
        if secret != self.appsecret:
            raise refused(40125)

    def _new(self, now: float) -> str:
        token = secrets.token_urlsafe(96)[:128]
        self._until[token] = now + TOKEN_LIFETIME
        return token

    def issue(self, grant_type: str, appid: str, secret: str) -> dict[str, Any]:
        """``/cgi-bin/token``: a new access token; the previous one works :data:`TOKEN_GRACE` s."""
        self._check_credentials(grant_type, appid, secret)
        now = clock.now()
        with self._lock:
            self._quotas.spend("token", TOKEN_DAILY_QUOTA, now)
            if self._current:
                self._until[self._current] = min(self._until[self._current], now + TOKEN_GRACE)
            token = self._current = self._new(now)
        return {"access_token": token, "expires_in": TOKEN_LIFETIME}

    def stable(self, grant_type: Any, appid: Any, secret: Any,
               force_refresh: bool = False) -> dict[str, Any]:
        """``/cgi-bin/stable_token``: the stable token, apart from ``/cgi-bin/token``'s.

        Normal mode answers the current stable token with its remaining life while more than
        :data:`STABLE_RENEW` s are left, else a new one (the old one works until its own expiry).
        ``force_refresh`` issues a new one and the previous stops working at once; a second one
        within :data:`STABLE_FORCE_GAP` s does not refresh, past :data:`STABLE_FORCE_PER_DAY`
        a day it is 45009 (see the constants for the sources).
        """
        self._check_credentials(grant_type, appid, secret)
        now = clock.now()
        with self._lock:
            self._quotas.spend("stable_token", STABLE_DAILY_QUOTA, now)
            current = self._stable
            left = self._until.get(current, now) - now
            if force_refresh and now - self._stable_forced_at < STABLE_FORCE_GAP and left > 0:
                return {"access_token": current, "expires_in": int(left)}
            if force_refresh:
                self._quotas.spend("stable_force", STABLE_FORCE_PER_DAY, now)
                self._stable_forced_at = now
                self._until.pop(current, None)
            elif left > STABLE_RENEW:
                return {"access_token": current, "expires_in": int(left)}
            token = self._stable = self._new(now)
        return {"access_token": token, "expires_in": TOKEN_LIFETIME}

    def check(self, token: str | None) -> None:
        """Raise 41001, 40001 or 42001 unless ``token`` works now."""
        if not token:
            raise refused(41001)
        with self._lock:
            until = self._until.get(token)
            if until is None:
                raise refused(40001)
            if clock.now() >= until:
                raise refused(42001 if token in (self._current, self._stable) else 40001)

"""Who may use the console: the token login, its session, CSRF tokens and the login rate limit.

- The console is on only when ``BOT_ADMIN_TOKEN`` is set (32 characters or more, checked by
  :mod:`bot.settings`); otherwise every ``/admin`` URL is a 404.
- ``POST /admin/login`` with the field ``token``: compared in constant time (the SHA-256 of both,
  so not even the length leaks). A right one starts a session: a random id kept in Redis
  (``Keys.admin_session``, by its SHA-256, with the session's CSRF token) for
  ``console.session_hours``, and sent as a cookie signed with a key derived from the token
  (changing the token ends every session), ``HttpOnly``, ``SameSite=Strict``, ``Path=/admin``,
  ``Secure`` when the request came over HTTPS. Logging out deletes the session in Redis: the
  cookie, even replayed, no longer opens anything.
- A wrong token is logged with the client's address and counted (``Keys.admin_failures``);
  after ``console.login_attempts`` failures in ``console.lockout_minutes`` the address gets 429
  until the lockout ends, right token or not.
- Every POST but the login needs the session's CSRF token (form field ``csrf`` or header
  ``X-CSRF-Token``): 403 without it. The login itself carries none: a forged login could only
  log someone into the console with the operator's own token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from flask import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from bot.config import Console
from bot.state import Keys

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

COOKIE = "bot_admin"
"""The session cookie (a signed session id)."""

COOKIE_PATH = "/admin"


@dataclass(frozen=True)
class Session:
    """A logged-in operator: the session id (from the cookie) and its CSRF token."""

    sid: str
    csrf: str


class Gate:
    """The console's lock: checks tokens, keeps sessions and counts failed logins."""

    def __init__(self, token: str, services: Services) -> None:
        self._token_digest = hashlib.sha256(token.encode()).digest()
        key = hmac.new(token.encode(), b"bot console session cookie", hashlib.sha256).digest()
        self._signer = URLSafeTimedSerializer(key, salt="bot-console")
        self._services = services

    @property
    def r(self) -> redis.Redis:
        """The bot's Redis (connected on first use, after gunicorn has forked)."""
        return self._services.redis

    @property
    def console(self) -> Console:
        """The console's settings (config/console.yaml)."""
        return self._services.config.console

    # --- the token ---------------------------------------------------------------------------

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the admin token, in time independent of where they differ."""
        return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), self._token_digest)

    def locked_out(self, address: str) -> int:
        """Seconds ``address`` must still wait after too many failures (0: it may try)."""
        key = Keys.admin_failures(address)
        failures = int(self.r.get(key) or 0)
        if failures < self.console.login_attempts:
            return 0
        return max(int(self.r.ttl(key)), 1)

    def failed(self, address: str) -> int:
        """Count a failed login from ``address``; how many within the lockout."""
        key = Keys.admin_failures(address)
        pipe = self.r.pipeline()
        pipe.set(key, 0, ex=self.console.lockout_minutes * 60, nx=True)  # the first starts it
        pipe.incr(key)
        failures = int(pipe.execute()[1])
        log.warning(
            "console: failed login from %s (%d of %d allowed in %d min)", address, failures,
            self.console.login_attempts, self.console.lockout_minutes,
        )
        return failures

    # --- sessions ----------------------------------------------------------------------------

    def open(self, address: str) -> tuple[Session, str]:
        """Start a session after a right token; the session and the cookie's value."""
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        key = Keys.admin_session(_digest(session.sid))
        pipe = self.r.pipeline()
        pipe.hset(key, mapping={"csrf": session.csrf, "address": address})
        pipe.expire(key, self.max_age)
        pipe.delete(Keys.admin_failures(address))
        pipe.execute()
        log.info("console: login from %s", address)
        return session, self._signer.dumps(session.sid)

    def session_of(self, request: Request) -> Session | None:
        """The live session the request's cookie names, or None."""
        cookie = request.cookies.get(COOKIE)
        if not cookie:
            return None
        try:
            sid = self._signer.loads(cookie, max_age=self.max_age)
        except BadSignature:
            log.info("console: a cookie with a bad signature from %s", request.remote_addr)
            return None
        if not isinstance(sid, str):
            return None
        csrf = self.r.hget(Keys.admin_session(_digest(sid)), "csrf")
        return Session(sid, csrf) if csrf else None

    def close(self, session: Session) -> None:
        """End ``session`` (log out): its cookie opens nothing any more."""
        self.r.delete(Keys.admin_session(_digest(session.sid)))

    @property
    def max_age(self) -> int:
        """Seconds a session lasts."""
        return self.console.session_hours * 3600

    # --- CSRF --------------------------------------------------------------------------------

    @staticmethod
    def csrf_holds(session: Session, request: Request) -> bool:
        """Whether the request carries the session's CSRF token (form field or header)."""
        given = request.form.get("csrf") or request.headers.get("X-CSRF-Token") or ""
        return hmac.compare_digest(given.encode(), session.csrf.encode())

    # --- the cookie --------------------------------------------------------------------------

    def set_cookie(self, response: Response, value: str, secure: bool) -> None:
        """Send the session cookie."""
        response.set_cookie(COOKIE, value, max_age=self.max_age, path=COOKIE_PATH,
                            httponly=True, samesite="Strict", secure=secure)

    @staticmethod
    def drop_cookie(response: Response, secure: bool) -> None:
        """Tell the browser to forget the session cookie."""
        response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict",
                               secure=secure)


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()

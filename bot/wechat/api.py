"""The bot's client for the WeChat outbound API (PLATFORM.md section 5).

One access token serves every process: it lives in Redis (:meth:`Keys.api_token`), and only the
process holding :meth:`Keys.api_token_lock` fetches a new one while the others wait for it. When a
call answers 40001/40014/42001 the token is dropped only if it is still the one that failed (a
compare-and-delete script, so a fresh token another process just fetched survives), refreshed and
the call retried once. Every HTTP call has a timeout; nothing retries without bound (wechatpy's
client does, so it is not used here).

Exceptions::

    ApiError                 errcode/errmsg from WeChat (``code``, ``message``)
     +-- ApiUnreachable      no answer: connection refused, timeout, not JSON (``code`` -2);
                             ``maybe_delivered`` says whether the request may have reached WeChat

Error codes the callers act on are named below (:data:`TOKEN_ERRORS`, :data:`RETRY_LATER`,
:data:`REFUSALS`).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import redis
import requests

from bot.settings import Settings
from bot.state import Keys

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
"""The token is invalid or expired: refresh it and retry once."""

RETRY_LATER = frozenset({45009, 45011, -1})
"""Daily quota, per-minute quota, system busy: back off and retry later."""

REFUSALS = frozenset({45015, 45047, 43004, 48002, 43101, 40003})
"""Outside the window, quota used, not following, blocked, refused, bad openid: drop the send."""

UNREACHABLE = -2
"""``ApiError.code`` of a call that got no usable answer (not a WeChat code)."""

CONNECT_TIMEOUT = 3.05
"""Seconds to open a connection to the API."""

READ_TIMEOUT = 10.0
"""Seconds to wait for an answer once the request is sent."""

TOKEN_MARGIN = 300
"""Seconds before ``expires_in`` at which the cached token is considered stale."""

LOCK_SECONDS = 15
"""How long the refresh lock is held at most (longer than one token request can take)."""

_DROP_IF_SAME = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ApiError(Exception):
    """WeChat answered with a non-zero ``errcode``."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    @property
    def retry_later(self) -> bool:
        """A quota or busy error: the same call may succeed after a pause."""
        return self.code in RETRY_LATER

    @property
    def refused(self) -> bool:
        """The platform refuses this send for good: drop it, never retry."""
        return self.code in REFUSALS

    @property
    def retryable(self) -> bool:
        """Nothing reached the subscriber and the same call may succeed later."""
        return self.retry_later


class ApiUnreachable(ApiError):
    """No usable answer: the request failed, timed out, or the body was not JSON."""

    def __init__(self, message: str, maybe_delivered: bool) -> None:
        super().__init__(UNREACHABLE, message)
        self.maybe_delivered = maybe_delivered

    @property
    def retryable(self) -> bool:
        """Retry only when the request surely never reached WeChat (else it may be a duplicate)."""
        return not self.maybe_delivered


class WeChatApi:
    """Calls to ``api_base`` with the shared access token."""

    def __init__(
        self,
        api_base: str,
        appid: str,
        appsecret: str,
        redis_client: redis.Redis,
        timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
    ) -> None:
        if not api_base.startswith(("http://", "https://")):
            raise ValueError(f"api_base must be an http(s) URL, not {api_base!r}")
        self.api_base = api_base.rstrip("/")
        self.appid = appid
        self.appsecret = appsecret
        self.redis = redis_client
        self.timeout = timeout
        self.http = requests.Session()
        self._drop_if_same = redis_client.register_script(_DROP_IF_SAME)

    @classmethod
    def from_settings(cls, settings: Settings, redis: redis.Redis | None = None) -> WeChatApi:
        """A client for the configured account; ``redis`` defaults to the bot's own server."""
        if redis is None:
            from bot.state import connect, resolve_url

            redis = connect(resolve_url(settings.redis_url, settings.data_dir))
        return cls(settings.api_base, settings.appid, settings.appsecret, redis)

    # --- messages --------------------------------------------------------------------------------

    def send_text(self, openid: str, content: str) -> None:
        """A customer-service text message (only inside the subscriber's 48 h window)."""
        self.call(
            "/cgi-bin/message/custom/send",
            {"touser": openid, "msgtype": "text", "text": {"content": content}},
        )

    def mass_send(self, openids: list[str], content: str, clientmsgid: str) -> int:
        """A mass text to a list of openids; returns the ``msg_id`` (idempotent by clientmsgid)."""
        if not 2 <= len(openids) <= 10000:
            raise ValueError("mass/send takes 2 to 10000 openids")
        return self._mass("/cgi-bin/message/mass/send", {"touser": openids}, content, clientmsgid)

    def mass_send_all(self, content: str, clientmsgid: str, tag_id: int | None = None) -> int:
        """A mass text to every follower (or one tag); returns the ``msg_id``."""
        target = {"is_to_all": True} if tag_id is None else {"is_to_all": False, "tag_id": tag_id}
        return self._mass("/cgi-bin/message/mass/sendall", {"filter": target}, content, clientmsgid)

    def _mass(self, path: str, audience: dict[str, Any], content: str, clientmsgid: str) -> int:
        """One mass text call to ``audience``; returns the ``msg_id``."""
        body = {
            **audience,
            "msgtype": "text",
            "text": {"content": content},
            "clientmsgid": clientmsgid,
        }
        return int(self.call(path, body).get("msg_id", 0))

    def mass_preview(self, openid: str, content: str) -> None:
        """Preview a mass text on one follower's phone."""
        self.call(
            "/cgi-bin/message/mass/preview",
            {"touser": openid, "msgtype": "text", "text": {"content": content}},
        )

    def send_template(
        self, openid: str, template_id: str, data: dict[str, str], url: str = ""
    ) -> int:
        """A template message (verified service accounts only, never marketing); its msgid."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {name: {"value": value} for name, value in data.items()},
        }
        if url:
            body["url"] = url
        return int(self.call("/cgi-bin/message/template/send", body).get("msgid", 0))

    # --- menu ------------------------------------------------------------------------------------

    def create_menu(self, body: dict[str, Any]) -> None:
        """Replace the custom menu with ``body`` (``{"button": [...]}``)."""
        self.call("/cgi-bin/menu/create", body)

    def get_menu(self) -> dict[str, Any]:
        """The current custom menu as the API returns it."""
        return self.call("/cgi-bin/menu/get", None, method="GET")

    # --- the machinery ---------------------------------------------------------------------------

    def call(self, path: str, body: dict[str, Any] | None, method: str = "POST") -> dict[str, Any]:
        """Call ``path`` with the shared token; refresh and retry once on a token error."""
        token = self.token()
        try:
            return self._request(method, path, body, token)
        except ApiError as exc:
            if exc.code not in TOKEN_ERRORS:
                raise
            self._drop_if_same(keys=[Keys.api_token()], args=[token])
            return self._request(method, path, body, self.token())

    def token(self) -> str:
        """The shared access token, fetched under the lock when there is none."""
        deadline = time.monotonic() + LOCK_SECONDS + READ_TIMEOUT
        while True:
            cached = self.redis.get(Keys.api_token())
            if cached:
                return cached if isinstance(cached, str) else cached.decode()
            owner = secrets.token_hex(8)
            if self.redis.set(Keys.api_token_lock(), owner, nx=True, ex=LOCK_SECONDS):
                try:
                    return self._refresh()
                finally:
                    self._drop_if_same(keys=[Keys.api_token_lock()], args=[owner])
            if time.monotonic() > deadline:
                raise ApiUnreachable("timed out waiting for another process's token", False)
            time.sleep(0.05)

    def _refresh(self) -> str:
        cached = self.redis.get(Keys.api_token())  # fetched while we waited for the lock
        if cached:
            return cached if isinstance(cached, str) else cached.decode()
        answer = self._send(
            "GET",
            "/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.appsecret,
            },
        )
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError(UNREACHABLE, f"token answer without access_token: {answer!r}")
        expires = int(answer.get("expires_in", 7200))
        self.redis.set(Keys.api_token(), token, ex=max(expires - TOKEN_MARGIN, 60))
        return token

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None, token: str
    ) -> dict[str, Any]:
        return self._send(method, path, params={"access_token": token}, body=body)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = self.api_base + path
        try:
            response = self.http.request(
                method,
                url,
                params=params,
                json=body,
                timeout=self.timeout,
            )
        except requests.ConnectTimeout as exc:
            raise ApiUnreachable(f"{path}: connect timeout ({exc})", False) from None
        except requests.ConnectionError as exc:
            raise ApiUnreachable(f"{path}: cannot connect ({exc})", False) from None
        except requests.Timeout as exc:
            raise ApiUnreachable(f"{path}: no answer in time ({exc})", True) from None
        except requests.RequestException as exc:
            raise ApiUnreachable(f"{path}: {exc}", True) from None
        try:
            answer = response.json()
        except ValueError:
            raise ApiUnreachable(
                f"{path}: HTTP {response.status_code}, not JSON: {response.text[:200]!r}", True
            ) from None
        if not isinstance(answer, dict):
            raise ApiUnreachable(f"{path}: answer is not a JSON object", True)
        code = answer.get("errcode", 0)
        if code:
            raise ApiError(int(code), str(answer.get("errmsg", "")))
        return answer

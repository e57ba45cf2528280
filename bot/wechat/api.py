"""The bot's client for the WeChat outbound API (PLATFORM.md section 5).

One access token serves every process: the *stable* token (``POST /cgi-bin/stable_token``), which,
unlike ``/cgi-bin/token``, does not invalidate the tokens other processes or the operator's other
tools hold. It lives in Redis (:meth:`Keys.api_token`) until 5 minutes before it expires (the
platform renews a stable token in its last 5 minutes and keeps the old one valid meanwhile), and
only the process holding :meth:`Keys.api_token_lock` fetches it while the others wait. When a call
answers 40001/40014/42001 the token is dropped only if it is still the one that failed (a
compare-and-delete script, so a fresh token another process just fetched survives), fetched again
and the call retried once; if the platform hands back the very token that failed, the client asks
for ``force_refresh`` (the platform allows 20 a day, 30 s apart: :meth:`Keys.api_token_forced`
keeps the processes to one per :data:`FORCE_GAP` seconds). Every HTTP call has a timeout;
nothing retries without bound (wechatpy's client does, so it is not used here).

Exceptions::

    ApiError                 errcode/errmsg from WeChat (``code``, ``message``)
     +-- ApiUnreachable      no answer: connection refused, timeout, not JSON (``code`` -2);
                             ``maybe_delivered`` says whether the request may have reached WeChat

The one retry policy: every failed call has a :attr:`ApiError.fate`, and callers act on it alone:

- :data:`RETRY`: nothing reached the subscriber and the same call may succeed later (a quota,
  "system busy", or no connection at all): back off and call again;
- :data:`UNKNOWN`: the request may have reached WeChat (a timeout after sending, or 45065: this
  mass call's ``clientmsgid`` went out before): never send it again, or the subscriber may get it
  twice;
- :data:`DROP`: the platform refused it for good (outside the window, not following...).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import redis
import requests

from bot.settings import Settings
from bot.state import Keys, drop_if_same

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
"""The token is invalid or expired: refresh it and retry once."""

RETRY_LATER = frozenset({45009, 45011, -1})
"""Daily quota, per-minute quota, system busy: back off and retry later (every other code is a
refusal for good, e.g. 45015 outside the window, 45047 quota used, 43004 not following)."""

ALREADY_SENT = 45065
"""A mass call's ``clientmsgid`` was sent before (within 24 h): a retry of a call that went out,
so its fate is :data:`UNKNOWN`."""

RETRY, UNKNOWN, DROP = "retry", "unknown", "drop"
"""The fates of a failed call (:attr:`ApiError.fate`)."""

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

FORCE_GAP = 30
"""Seconds between two ``force_refresh`` requests of the stable token (the platform's minimum).
WeChat's stable_token doc: force_refresh "每天限用20次... 两次间隔需要大于30秒"."""

MASS_TAG_MEMBERS = 50
"""Openids one ``tags/members/batchtagging`` or ``batchuntagging`` call takes (40032 above)."""

class ApiError(Exception):
    """WeChat answered with a non-zero ``errcode``."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    @property
    def fate(self) -> str:
        """:data:`RETRY` for a quota or busy error, :data:`UNKNOWN` for a mass call that went out
        before (:data:`ALREADY_SENT`), else :data:`DROP`."""
        if self.code == ALREADY_SENT:
            return UNKNOWN
        return RETRY if self.code in RETRY_LATER else DROP


class ApiUnreachable(ApiError):
    """No usable answer: the request failed, timed out, or the body was not JSON."""

    def __init__(self, message: str, maybe_delivered: bool) -> None:
        super().__init__(UNREACHABLE, message)
        self.maybe_delivered = maybe_delivered

    @property
    def fate(self) -> str:
        """:data:`UNKNOWN` when the request may have reached WeChat, else :data:`RETRY`."""
        return UNKNOWN if self.maybe_delivered else RETRY


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

    @classmethod
    def from_settings(cls, settings: Settings, redis_client: redis.Redis) -> WeChatApi:
        """A client for the account ``settings`` name, sharing the token in ``redis_client``."""
        return cls(settings.api_base, settings.appid, settings.appsecret, redis_client)

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

    def _mass(self, path: str, audience: dict[str, Any], content: str, clientmsgid: str) -> int:
        """One mass text call to ``audience``; returns the ``msg_id``."""
        body = {
            **audience,
            "msgtype": "text",
            "text": {"content": content},
            "clientmsgid": clientmsgid,
        }
        return int(self.call(path, body).get("msg_id", 0))

    def mass_send_tag(self, tag_id: int, content: str, clientmsgid: str) -> int:
        """A mass text to the members of tag ``tag_id`` at the moment of the call (``sendall``);
        returns the ``msg_id``."""
        audience = {"filter": {"is_to_all": False, "tag_id": tag_id}}
        return self._mass("/cgi-bin/message/mass/sendall", audience, content, clientmsgid)

    # --- user tags -------------------------------------------------------------------------------

    def tags(self) -> dict[str, int]:
        """The account's tags: name -> id."""
        answer = self.call("/cgi-bin/tags/get", None, method="GET")
        return {str(t["name"]): int(t["id"]) for t in answer.get("tags", [])}

    def create_tag(self, name: str) -> int:
        """A new tag called ``name``; returns its id."""
        return int(self.call("/cgi-bin/tags/create", {"tag": {"name": name}})["tag"]["id"])

    def tag_members(self, tag_id: int, openids: list[str], add: bool = True) -> None:
        """Put ``openids`` (at most :data:`MASS_TAG_MEMBERS`) in tag ``tag_id``, or remove them."""
        if not 1 <= len(openids) <= MASS_TAG_MEMBERS:
            raise ValueError(f"tagging takes 1 to {MASS_TAG_MEMBERS} openids a call")
        path = "batchtagging" if add else "batchuntagging"
        self.call(f"/cgi-bin/tags/members/{path}", {"openid_list": openids, "tagid": tag_id})

    def tagged(self, tag_id: int) -> list[str]:
        """Every openid in tag ``tag_id`` (read page by page)."""
        found: list[str] = []
        after = ""
        while True:
            answer = self.call("/cgi-bin/user/tag/get", {"tagid": tag_id, "next_openid": after})
            page = (answer.get("data") or {}).get("openid") or []
            found.extend(page)
            after = answer.get("next_openid") or ""
            if not page or not after:
                return found

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
            drop_if_same(self.redis, Keys.api_token(), token)
            fresh = self.token(failed=token)
            if fresh == token:  # the platform still hands out the token it refuses
                raise
            return self._request(method, path, body, fresh)

    def token(self, failed: str = "") -> str:
        """The shared access token, fetched under the lock when there is none.

        ``failed`` is a token the platform just refused: if fetching gives it back, the client
        forces a new one (at most once per :data:`FORCE_GAP` s across processes).
        """
        deadline = time.monotonic() + LOCK_SECONDS + READ_TIMEOUT
        while True:
            cached = self.redis.get(Keys.api_token())
            if cached:
                return cached if isinstance(cached, str) else cached.decode()
            owner = secrets.token_hex(8)
            if self.redis.set(Keys.api_token_lock(), owner, nx=True, ex=LOCK_SECONDS):
                try:
                    return self._refresh(failed)
                finally:
                    drop_if_same(self.redis, Keys.api_token_lock(), owner)
            if time.monotonic() > deadline:
                raise ApiUnreachable("timed out waiting for another process's token", False)
            time.sleep(0.05)

    def _refresh(self, failed: str) -> str:
        cached = self.redis.get(Keys.api_token())  # fetched while we waited for the lock
        if cached:
            return cached if isinstance(cached, str) else cached.decode()
        token, expires = self._stable_token(force=False)
        if token == failed and self.redis.set(Keys.api_token_forced(), "1", nx=True, ex=FORCE_GAP):
            token, expires = self._stable_token(force=True)
        self.redis.set(Keys.api_token(), token, ex=max(expires - TOKEN_MARGIN, 60))
        return token

    def _stable_token(self, force: bool) -> tuple[str, int]:
        """``(token, expires_in)`` from ``/cgi-bin/stable_token``."""
        answer = self._send(
            "POST",
            "/cgi-bin/stable_token",
            params={},
            body={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.appsecret,
                "force_refresh": force,
            },
        )
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise ApiError(UNREACHABLE, f"token answer without access_token: {answer!r}")
        return token, int(answer.get("expires_in", 7200))

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

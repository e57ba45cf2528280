"""The WeChat API client against a real local HTTP server that answers like the platform."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import fakeredis
import pytest

from bot.settings import Settings
from bot.state import Keys
from bot.wechat.api import DROP, RETRY, UNKNOWN, ApiError, ApiUnreachable, WeChatApi


class Platform:
    """What the fake server knows: issued tokens, calls received, errors to answer next."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.calls: list[tuple[str, dict[str, str], Any]] = []
        self.errors: list[int] = []
        self.menu: dict[str, Any] = {}
        self.delay = 0.0
        self.before_send: Callable[[], None] | None = None
        self.lock = threading.Lock()

    def answer(self, path: str, query: dict[str, str], body: Any) -> dict[str, Any]:
        with self.lock:
            self.calls.append((path, query, body))
            if path == "/cgi-bin/stable_token":  # the same token until forced (or none yet)
                if body.get("force_refresh") or not self.tokens:
                    self.tokens.append(f"token-{len(self.tokens) + 1}")
                return {"access_token": self.tokens[-1], "expires_in": 7200}
            if self.before_send:
                self.before_send()
                self.before_send = None
            if query.get("access_token") != (self.tokens[-1] if self.tokens else None):
                return {"errcode": 40001, "errmsg": "invalid credential rid: 1"}
            if self.errors:
                code = self.errors.pop(0)
                return {"errcode": code, "errmsg": f"error {code} rid: 2"}
            if path == "/cgi-bin/menu/create":
                self.menu = body
            if path == "/cgi-bin/menu/get":
                return {"menu": self.menu}
            if path == "/cgi-bin/message/mass/send":
                return {"errcode": 0, "errmsg": "send job submission success", "msg_id": 1000}
            return {"errcode": 0, "errmsg": "ok"}

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.calls]


@pytest.fixture()
def platform() -> Iterator[tuple[Platform, str]]:
    state = Platform()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            """Quiet."""

        def _reply(self, body: Any) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if state.delay:
                time.sleep(state.delay)
            data = json.dumps(state.answer(url.path, query, body)).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout test)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._reply(None)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            self._reply(json.loads(self.rfile.read(length) or b"null"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def store() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(decode_responses=True)


def make_api(base: str, store: fakeredis.FakeRedis, **kwargs: Any) -> WeChatApi:
    return WeChatApi(base, "wxappid", "secret", store, **kwargs)


def test_send_text_fetches_one_token_and_posts_the_message(platform, store):
    state, base = platform
    api = make_api(base, store)
    api.send_text("o1", "你好")
    api.send_text("o2", "again")
    assert state.paths() == [
        "/cgi-bin/stable_token",
        "/cgi-bin/message/custom/send",
        "/cgi-bin/message/custom/send",
    ]
    _, query, body = state.calls[1]
    assert query["access_token"] == "token-1"
    assert body == {"touser": "o1", "msgtype": "text", "text": {"content": "你好"}}
    assert state.calls[0][1] == {}  # the secret travels in the body, not in the URL
    assert state.calls[0][2] == {
        "grant_type": "client_credential", "appid": "wxappid", "secret": "secret",
        "force_refresh": False,
    }


def test_processes_share_the_token_through_redis(platform, store):
    state, base = platform
    first, second = make_api(base, store), make_api(base, store)
    first.send_text("o1", "a")
    second.send_text("o1", "b")
    assert state.paths().count("/cgi-bin/stable_token") == 1
    assert store.ttl(Keys.api_token()) > 6000


def test_concurrent_clients_fetch_the_token_once(platform, store):
    state, base = platform
    state.delay = 0.2
    clients = [make_api(base, store) for _ in range(4)]
    threads = [threading.Thread(target=c.token) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state.paths().count("/cgi-bin/stable_token") == 1
    assert not store.exists(Keys.api_token_lock())


def test_an_expired_token_is_refreshed_and_the_call_retried_once(platform, store):
    state, base = platform
    api = make_api(base, store)
    api.token()
    state.errors = [42001]
    api.send_text("o1", "hi")
    assert state.paths() == [
        "/cgi-bin/stable_token",
        "/cgi-bin/message/custom/send",
        "/cgi-bin/stable_token",  # the same token comes back: it is forced
        "/cgi-bin/stable_token",
        "/cgi-bin/message/custom/send",
    ]
    assert [body["force_refresh"] for path, _, body in state.calls if "token" in path] == [
        False, False, True]
    assert store.get(Keys.api_token()) == "token-2"


def test_force_refresh_is_asked_at_most_once_per_gap_across_processes(platform, store):
    state, base = platform
    first, second = make_api(base, store), make_api(base, store)
    first.token()
    state.errors = [42001]
    first.send_text("o1", "hi")  # forces token-2
    state.errors = [40001, 40001]
    store.set(Keys.api_token(), "token-2")
    with pytest.raises(ApiError) as caught:  # token-2 refused again within 30 s: not forced
        second.send_text("o1", "hi")
    assert caught.value.code == 40001
    assert state.tokens == ["token-1", "token-2"]
    assert 0 < store.ttl(Keys.api_token_forced()) <= 30


def test_a_second_token_error_is_raised_not_retried_again(platform, store):
    state, base = platform
    api = make_api(base, store)
    state.errors = [40001, 40014]
    with pytest.raises(ApiError) as caught:
        api.send_text("o1", "hi")
    assert caught.value.code == 40014
    assert state.paths().count("/cgi-bin/message/custom/send") == 2


def test_a_token_another_process_refreshed_is_not_dropped(platform, store):
    state, base = platform
    api = make_api(base, store)
    api.token()

    def another_process_refreshes() -> None:
        # while this call is in flight, another process gets token-2 and stores it
        state.tokens.append("token-2")
        store.set(Keys.api_token(), "token-2")

    state.before_send = another_process_refreshes
    api.send_text("o1", "hi")
    assert state.tokens == ["token-1", "token-2"]  # no third fetch: token-2 was kept and used
    assert state.calls[-1][1]["access_token"] == "token-2"
    assert store.get(Keys.api_token()) == "token-2"


@pytest.mark.parametrize(
    ("code", "fate"),
    [(45015, DROP), (43004, DROP), (48002, DROP), (45047, DROP),
     (43101, DROP), (45009, RETRY), (45011, RETRY), (-1, RETRY), (45065, UNKNOWN)],
)
def test_platform_errors_are_raised_once_with_their_fate(platform, store, code, fate):
    state, base = platform
    api = make_api(base, store)
    state.errors = [code]
    with pytest.raises(ApiError) as caught:
        api.send_text("o1", "hi")
    assert (caught.value.code, caught.value.fate) == (code, fate)
    assert state.paths().count("/cgi-bin/message/custom/send") == 1


def test_menu_round_trip(platform, store):
    _, base = platform
    api = make_api(base, store)
    body = {"button": [{"type": "click", "name": "帮助", "key": "HELP"}]}
    api.create_menu(body)
    assert api.get_menu() == {"menu": body}


def test_mass_send_returns_the_msg_id(platform, store):
    state, base = platform
    api = make_api(base, store)
    assert api.mass_send(["o1", "o2"], "digest", "run-1") == 1000
    assert state.calls[-1][2]["clientmsgid"] == "run-1"
    with pytest.raises(ValueError):
        api.mass_send(["o1"], "digest", "run-2")


def test_a_slow_answer_times_out_as_maybe_delivered(platform, store):
    state, base = platform
    api = make_api(base, store, timeout=(1.0, 0.3))
    api.token()
    state.delay = 0.6
    with pytest.raises(ApiUnreachable) as caught:
        api.send_text("o1", "hi")
    assert caught.value.maybe_delivered
    assert caught.value.fate == UNKNOWN  # never sent again: the subscriber may have it


def test_a_closed_port_is_unreachable_and_not_delivered(store):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = make_api(f"http://127.0.0.1:{port}", store)
    with pytest.raises(ApiUnreachable) as caught:
        api.send_text("o1", "hi")
    assert not caught.value.maybe_delivered
    assert caught.value.fate == RETRY  # nothing went out


def test_from_settings_uses_api_base(platform, store, tmp_path):
    state, base = platform
    api = WeChatApi.from_settings(Settings(api_base=base), store)
    api.send_text("o1", "hi")
    assert state.paths()[-1] == "/cgi-bin/message/custom/send"


def test_a_non_url_base_is_refused(store):
    with pytest.raises(ValueError, match="http"):
        make_api("127.0.0.1:8701", store)


TWO_PROCESSES = """
import sys
from bot import state
from bot.wechat.api import WeChatApi
api = WeChatApi(sys.argv[1], sys.argv[2], sys.argv[3], state.connect(sys.argv[4]))
print(api.token())
"""


@pytest.mark.redis_server
def test_two_processes_share_one_stable_token_through_redis(api_app, sim_settings, real_redis,
                                                            redis_server):
    """Two processes (web and worker, say) against the simulator's platform: one stable_token
    call, one token, and it works for both."""
    import subprocess
    import sys

    from bot.settings import ROOT
    from bot.simulator.server import BackgroundServer

    platform = api_app.extensions["sim.platform"]
    with BackgroundServer(api_app) as server:
        args = [server.url, sim_settings.appid, sim_settings.appsecret, redis_server]
        procs = [subprocess.Popen([sys.executable, "-c", TWO_PROCESSES, *args], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True) for _ in range(2)]
        tokens = [proc.communicate(timeout=60)[0].strip() for proc in procs]
        assert tokens[0] == tokens[1] != ""
        assert platform.calls["/cgi-bin/stable_token"] == 1
        assert platform.calls.get("/cgi-bin/token", 0) == 0
        platform.check_token(tokens[0])  # valid on the platform
        assert real_redis.get(Keys.api_token()) == tokens[0]

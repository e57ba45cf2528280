"""Shared fixtures: settings, a fake or real Redis, the content library, the app, a signed client.

Unit tests run against fakeredis; tests marked ``redis_server`` get a real server started here
(the embedded one of :mod:`bot.state`, under a temporary folder).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import fakeredis
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bot import clock, state
from bot.app import create_app
from bot.config import Config, load_config
from bot.search import Library
from bot.services import build
from bot.settings import ROOT, Settings
from bot.simulator.api import create_api
from bot.simulator.wire import ReadReply, build_message, read_reply, signed_request
from bot.wechat.envelope import Envelope

DATA = Path(__file__).resolve().parent / "data"
"""The tests' own data: conformance payloads and crypto vectors (see data/conformance/README.md)."""


def server_pid(data_dir: Path) -> int | None:
    """PID of the embedded Redis under ``data_dir``, if its pidfile is there."""
    try:
        return int((data_dir / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(autouse=True)
def _wall_clock() -> Iterator[None]:
    """Every test starts and ends on the real clock."""
    clock.reset()
    yield
    clock.reset()


REBOUND = "rebound.example"
"""A name the test browser resolves to 127.0.0.1, as an attacker's DNS would after rebinding."""

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"]
BROWSER_WAIT_MS = 15_000


def chromium_path() -> str:
    """Debian's chromium, or skip saying how to get it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Chromium is not installed (scripts/install-browser installs Debian's)")
    return found


@pytest.fixture
def browser_page(tmp_path: Path):
    """A page of headless Chromium (Debian's, driven by Playwright), or skip saying why."""
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (requirements-dev.txt)")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True,
            args=CHROMIUM_FLAGS)
        context.set_default_timeout(BROWSER_WAIT_MS)
        yield context.new_page()
        context.close()


@pytest.fixture(autouse=True)
def _fresh_visit_memory() -> None:
    """Every test starts with a fresh Redis: forget what the visit digest learnt of another's."""
    from bot.push import visits

    visits._known.clear()
    visits._editions.clear()


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """The real content library over content/, built once for the session."""
    return Library.open(ROOT / "content", ROOT / "config", tmp_path_factory.mktemp("index"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Development settings with state under a temporary folder."""
    return Settings(data_dir=tmp_path / "var")


@pytest.fixture
def config() -> Config:
    """The project's own config/."""
    return load_config(ROOT / "config")


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    """A fresh in-memory Redis."""
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def round_trips(monkeypatch) -> list[int]:
    """Count the commands (or pipelines, or scripts) sent to Redis: one round trip each."""
    sent = [0]
    original = redis.connection.AbstractConnection.send_packed_command

    def send(self, *args, **kwargs):
        sent[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", send)
    return sent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis server for this session (started here, stopped at the end)."""
    folder = tmp_path_factory.mktemp("redis")
    url, _ = state.ensure_embedded(folder)
    yield url
    state.stop_embedded(folder)


@pytest.fixture
def real_redis(redis_server: str):
    """A client of the real server, flushed before and after the test."""
    client = state.connect(redis_server)
    client.flushall()
    yield client
    client.flushall()


@dataclasses.dataclass
class WeChat:
    """Plays WeChat against the app: signs, encrypts and posts bodies, reads the replies."""

    client: FlaskClient
    settings: Settings

    @property
    def envelope(self) -> Envelope:
        s = self.settings
        return Envelope(s.token, s.aes_key, s.appid)

    def post(self, xml: str, mode: str | None = None, **query: str) -> TestResponse:
        """POST ``xml`` as WeChat would in ``mode`` (the app's by default); ``query`` overrides."""
        s = self.settings
        signed = signed_request(xml, mode or s.mode, s.token, s.aes_key, s.appid)
        params = {**signed.query, **query}
        return self.client.post("/wechat", query_string=params, data=signed.body)

    def reply(self, xml: str, openid: str, mode: str | None = None) -> ReadReply:
        """POST ``xml`` and read the reply as WeChat does (raises BadReply if it is not valid)."""
        response = self.post(xml, mode)
        assert response.status_code == 200, response.get_data(as_text=True)
        return read_reply(response.data, openid, mode or self.settings.mode, self.envelope)

    def ask(self, text: str, openid: str = "oAlice000000000000000000000", **kw) -> ReadReply:
        """Send a text message and read the reply."""
        return self.reply(build_message("text", openid, Content=text), openid, **kw)

    def event(self, event: str, openid: str = "oAlice000000000000000000000", **fields) -> ReadReply:
        """Send an event and read the reply."""
        return self.reply(build_message("event", openid, Event=event, **fields), openid)


@pytest.fixture
def sim_settings(tmp_path: Path) -> Settings:
    """Development settings for the simulator, with its state under a temporary folder."""
    return Settings(data_dir=tmp_path / "var")


@pytest.fixture
def api_app(sim_settings: Settings, tmp_path: Path) -> Flask:
    """The simulator's fake WeChat API (and chat page), its delivery log in a temporary folder."""
    app = create_api(sim_settings, log_path=tmp_path / "deliveries.jsonl")
    app.testing = True
    return app


@pytest.fixture
def http(api_app: Flask) -> FlaskClient:
    """A test client of the fake API."""
    return api_app.test_client()


@pytest.fixture
def make_app(
    settings: Settings, config: Config, fake_redis: fakeredis.FakeRedis, library: Library
) -> Callable[..., Flask]:
    """Build an app; keyword arguments replace fields of the settings (``mode="safe"``...)."""

    def make(config_override: Config | None = None, **changes) -> Flask:
        app = create_app(
            build(
                dataclasses.replace(settings, **changes),
                config=config_override or config,
                redis_client=fake_redis,
                library=library,
            )
        )
        app.testing = True
        return app

    return make


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app in plaintext mode."""
    return make_app()


@pytest.fixture
def wechat(app: Flask) -> WeChat:
    """WeChat posting to the plaintext-mode app."""
    return WeChat(app.test_client(), app.extensions["bot.services"].settings)


@pytest.fixture(params=["plain", "compat", "safe"])
def any_mode(request: pytest.FixtureRequest, make_app: Callable[..., Flask]) -> WeChat:
    """WeChat posting to an app in each of the three modes."""
    app = make_app(mode=request.param)
    return WeChat(app.test_client(), app.extensions["bot.services"].settings)

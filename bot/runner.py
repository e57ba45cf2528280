"""``python -m bot run``: every process of the bot on one machine, stopped together by Ctrl-C.

Starts the embedded Redis (unless ``REDIS_URL`` is set) and then, as child processes sharing it,
the Procfile's processes with the Procfile's command lines (``python -m bot web``, ``worker``,
``push scheduler``), and the simulator (fake WeChat API and chat page). Without
``BOT_ADMIN_TOKEN`` it makes a random one, so the operator console is on, and prints it with the
console's URL. If any child exits, the
others are stopped too, so a half-running bot never hides
behind a live terminal.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from bot import state
from bot.settings import Settings

STOP_GRACE_SECONDS = 10.0
WEB_THREADS = 8
"""Threads per gunicorn worker: a re-delivery must be served while its first copy is answered."""


def gunicorn_command(port: int, workers: int = 2, host: str = "0.0.0.0") -> list[str]:
    """The one command line that serves ``bot.app:create_app()`` (``python -m bot web`` runs it)."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "bot.app:create_app()",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "bot.serving.BufferingWorker",  # gthread, but a thread gets a request once it has arrived
        "--threads",
        str(WEB_THREADS),
        "--timeout",
        "30",
        "--preload",  # build the app (content index, models) once, before forking the workers
        "--graceful-timeout",
        "5",
        "--access-logfile",
        "-",
    ]


@dataclass
class Child:
    """One supervised process."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None


def run_all(settings: Settings, port: int, sim_port: int | None) -> int:
    """Start everything, wait for Ctrl-C (or a child's death), stop everything; exit status."""
    env = dict(os.environ)
    started_redis = False
    if settings.redis_url is None:
        url, started_redis = state.ensure_embedded(settings.data_dir)
        env["REDIS_URL"] = url
        print(f"embedded Redis: {url} (data in {settings.data_dir})", flush=True)
    made_token = not env.get("BOT_ADMIN_TOKEN", "").strip()
    if made_token:  # the console is on in development, behind a token nobody else knows
        env["BOT_ADMIN_TOKEN"] = secrets.token_urlsafe(32)
    python = sys.executable
    children = [
        Child("web", [python, "-m", "bot", "web", "--host", "127.0.0.1", "--port", str(port)]),
        Child("worker", [python, "-m", "bot", "worker"]),
        Child("scheduler", [python, "-m", "bot", "push", "scheduler"]),
    ]
    if sim_port is not None:
        env.setdefault("WECHAT_API_BASE", f"http://127.0.0.1:{sim_port}")
        children.append(
            Child(
                "simulator",
                [
                    python,
                    "-m",
                    "bot",
                    "sim",
                    "api",
                    "--port",
                    str(sim_port),
                    "--webhook",
                    f"http://127.0.0.1:{port}/wechat",
                ],
            )
        )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    status = 0
    try:
        for child in children:
            child.process = subprocess.Popen(child.command, env=env, start_new_session=True)
            print(f"started {child.name} (pid {child.process.pid})", flush=True)
        print(
            f"webhook: http://127.0.0.1:{port}/wechat  health: http://127.0.0.1:{port}/healthz",
            flush=True,
        )
        console = f"operator console: http://127.0.0.1:{port}/admin"
        if made_token:
            print(f"{console}  token: {env['BOT_ADMIN_TOKEN']} (new at each start; set "
                  "BOT_ADMIN_TOKEN to keep one)", flush=True)
        else:
            print(f"{console}  (log in with your BOT_ADMIN_TOKEN)", flush=True)
        if sim_port is not None:
            _push_menu(sim_port, env)
            print(f"chat with the account: http://127.0.0.1:{sim_port}/", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        while not stopping:
            for child in children:
                code = child.process.poll() if child.process else None
                if code is not None:
                    print(f"{child.name} exited with status {code}; stopping the rest", flush=True)
                    status, stopping = code or 1, True
            time.sleep(0.2)
    finally:
        _stop_children(children)
        if started_redis:
            state.stop_embedded(settings.data_dir)
            print("embedded Redis stopped (state kept in the append-only file)", flush=True)
    return status


def _push_menu(sim_port: int, env: dict[str, str]) -> None:
    """Create config/menu.yaml's menu on the simulator, as an operator would on the real one."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", sim_port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "menu", "push"], env=env, capture_output=True, text=True
    )
    print("menu: " + (done.stdout or done.stderr).strip().removeprefix("Error: "), flush=True)


def _stop_children(children: list[Child]) -> None:
    running = [c for c in children if c.process and c.process.poll() is None]
    for child in running:
        os.killpg(child.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in running:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        print(f"stopped {child.name}", flush=True)

"""``sim chat``: a chat with the account in the terminal, pushes included.

Each line typed goes through :func:`bot.simulator.actions.parse_action` and the
:class:`~bot.simulator.driver.Driver`; the reply (or the client's failure notice) is printed with
its timing. A background thread polls the fake API's ``/sim/deliveries`` for this subscriber and
prints each pushed message as it arrives (passive replies, ``api: "reply"``, are already shown with
their exchange). On start it says which kind of account the fake API plays (``/sim/account``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import requests

from bot.simulator.actions import USAGE, ActionError, parse_action
from bot.simulator.driver import Driver, Exchange, openid_for

POLL_SECONDS = 0.5
"""How often the terminal asks the fake API for new pushes."""

Echo = Callable[[str], None]


def playing(kind: str, channels: Iterable[str]) -> str:
    """``playing a verified subscription account (digest channels: visit, tag, custom)``."""
    article = "an" if kind[:1] in ("a", "e", "i", "o", "u") else "a"
    return f"playing {article} {kind} (digest channels: {', '.join(channels)})"


def account_line(api_base: str, http: requests.Session | None = None) -> str:
    """What :func:`playing` says of the fake API at ``api_base``; empty when it cannot be asked."""
    try:
        answer = (http or requests).get(f"{api_base}/sim/account", timeout=3)
        answer.raise_for_status()
        body: Any = answer.json()
        return "the fake API is " + playing(str(body["kind"]), [str(c) for c in body["channels"]])
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return ""


def describe(exchange: Exchange) -> str:
    """How the terminal shows one exchange."""
    if not exchange.request_xml:
        return "  (told the platform)"
    timing = f"{exchange.seconds * 1000:.0f} ms, {len(exchange.attempts)} deliveries"
    if exchange.problem:
        return f"公众号: {exchange.shown}\n  ({exchange.problem}; {timing})"
    if exchange.reply is None or exchange.reply.kind == "none":
        return f"  (no reply; {timing})"
    return f"公众号 [{exchange.reply.kind}]: {exchange.shown}\n  ({timing})"


class PushWatcher:
    """Prints the pushes the fake API accepts for one subscriber, from a daemon thread."""

    def __init__(self, api_base: str, openid: str, echo: Echo) -> None:
        self.api_base, self.openid, self.echo = api_base, openid, echo
        self.http = requests.Session()
        self._stop = threading.Event()
        self.seq = self._fetch(0)[1]  # only what arrives from now on
        self._thread = threading.Thread(target=self._run, daemon=True, name="push-watcher")

    def start(self) -> PushWatcher:
        """Begin polling."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join(timeout=2)

    def poll(self) -> None:
        """Print every push after the last one seen."""
        entries, last = self._fetch(self.seq)
        for entry in entries:
            if entry.get("api") == "reply":  # shown with its exchange already
                continue
            tag = f"{entry['api']}/{entry['msgtype']} {entry['time']}"
            self.echo(f"[推送 {tag}] {entry['content']}")
        self.seq = max(self.seq, last)

    def _fetch(self, after: int) -> tuple[list[dict], int]:
        try:
            answer = self.http.get(f"{self.api_base}/sim/deliveries", timeout=3,
                                   params={"openid": self.openid, "after": after})
            answer.raise_for_status()
            body = answer.json()
        except (requests.RequestException, ValueError):
            return [], after
        return body["deliveries"], int(body["last"])

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()


def run_chat(
    driver: Driver,
    user: str,
    lines: Iterable[str],
    echo: Echo,
    api_base: str | None = None,
) -> int:
    """Chat as ``user`` until ``lines`` ends or ``/quit``; returns how many exchanges were made."""
    watcher = PushWatcher(api_base, openid_for(user), echo).start() if api_base else None
    echo(f"chatting as {user} ({openid_for(user)}) with {driver.url} in {driver.settings.mode} "
         "mode; /help for commands, /quit to leave")
    kind = account_line(api_base) if api_base else ""
    if kind:
        echo(kind)
    count = 0
    try:
        for line in lines:
            if line.strip() in ("/quit", "/exit"):
                break
            if line.strip() == "/help":
                echo(USAGE.strip("\n"))
                continue
            try:
                action = parse_action(line)
            except ActionError as exc:
                echo(str(exc))
                continue
            echo(describe(driver.act(user, action)))
            count += 1
    finally:
        if watcher is not None:
            watcher.stop()
            watcher.poll()
    return count

"""``python -m bot sim ...``: fake API with chat page, one exchange, a chat REPL, the handshake."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import requests

from bot import clock
from bot.cli import load_settings, open_services
from bot.settings import MODES, Settings
from bot.simulator.actions import ActionError, parse_action
from bot.simulator.driver import (
    DELIVERIES,
    DELIVERY_TIMEOUT,
    Driver,
    api_replier,
    api_reporter,
)
from bot.simulator.scenario import scenario

DEFAULT_WEBHOOK = "http://127.0.0.1:8700/wechat"

HOST_NAME = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?")
"""What ``sim api --allow-host`` takes: a name, IPv4 or bracketed IPv6 address, perhaps a port."""


def _settings(mode: str | None = None) -> Settings:
    settings = load_settings()
    return dataclasses.replace(settings, mode=mode) if mode else settings


def _install_clock(now: str | None, speed: float | None,
                   api_base: str | None = None) -> clock.VirtualClock | None:
    """Install a virtual clock when ``--now`` or ``--speed`` is given.

    ``--now api`` follows the fake API's clock (its time and speed), so a driver in another
    process stamps CreateTime on the same virtual time as the platform's windows.
    """
    if now is None and speed is None:
        return None
    start = time.time()
    if now == "api" and api_base:
        try:
            answer = requests.get(f"{api_base}/sim/clock", timeout=3).json()
        except (requests.RequestException, ValueError) as exc:
            raise click.ClickException(f"cannot read the clock of {api_base}: {exc}") from None
        start, speed = float(answer["now"]), float(answer["speed"]) if speed is None else speed
    elif now is not None:
        try:
            start = clock.parse_moment(now)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--now") from None
    virtual = clock.VirtualClock(start=start, speed=1.0 if speed is None else speed)
    clock.install(virtual)
    return virtual


def clock_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--now`` and ``--speed``: run on virtual time."""
    command = click.option("--speed", type=click.FloatRange(min=0), default=None,
                           help="Virtual seconds per real second (0 freezes the clock).")(command)
    return click.option("--now", default=None, metavar="ISO8601",
                        help="Virtual start time, e.g. 2026-01-05T09:00:00+08:00 ('api' in "
                             "send/chat: the fake API's clock).")(command)


def driver_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options of the commands that talk to the webhook."""
    for option in reversed([
        click.option("--user", default="alice", show_default=True,
                     help="The simulated subscriber (each name has its own stable openid)."),
        click.option("--url", default=DEFAULT_WEBHOOK, show_default=True,
                     envvar="BOT_WEBHOOK_URL", help="The webhook to post to."),
        click.option("--mode", type=click.Choice(MODES), default=None,
                     help="Message mode (default: WECHAT_MODE)."),
        click.option("--api", "api_base", default=None,
                     help="Fake API to tell what the subscriber does (default: WECHAT_API_BASE)."),
        click.option("--no-report", is_flag=True,
                     help="Do not tell the fake API (e.g. against a real WeChat API base)."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=DELIVERY_TIMEOUT,
                     show_default=True, help="Seconds to wait for one delivery."),
        click.option("--deliveries", type=click.IntRange(min=1), default=DELIVERIES,
                     show_default=True, help="Deliveries of one message in all (with retries)."),
    ]):
        command = option(command)
    return clock_options(command)


def _driver(url: str, mode: str | None, api_base: str | None, no_report: bool, timeout: float,
            deliveries: int) -> tuple[Driver, str | None]:
    settings = _settings(mode)
    base = None if no_report else (api_base or settings.api_base).rstrip("/")
    report = api_reporter(base) if base else None
    replied = api_replier(base) if base else None
    return Driver(url, settings, report=report, replied=replied, timeout=timeout,
                  deliveries=deliveries), base


@click.group()
def sim() -> None:
    """The local WeChat: fake API and chat page, one exchange, a chat in the terminal."""


def _host_names(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
                ) -> tuple[str, ...]:
    """Check each ``--allow-host`` value; lower-cased, as :func:`create_api` compares them."""
    for value in values:
        if not HOST_NAME.fullmatch(value):
            raise click.BadParameter(
                f"{value!r} is not a host name (NAME, NAME:PORT, an address, [IPv6])")
    return tuple(value.lower() for value in values)


@sim.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; requests naming it as their Host are served too.")
@click.option("--port", default=8701, show_default=True, envvar="BOT_SIM_PORT")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              callback=_host_names,
              help="Also serve requests whose Host header is NAME (any port) or NAME:PORT; "
                   "repeatable. Without it only localhost, 127.x.y.z, [::1] and --host are "
                   "served (403 otherwise), so no web page can reach the simulator through "
                   "DNS rebinding.")
@click.option("--webhook", default=DEFAULT_WEBHOOK, show_default=True, envvar="BOT_WEBHOOK_URL",
              help="Where the chat page posts and job-finish events go.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Delivery log (JSON lines). Default: BOT_DATA_DIR/sim/deliveries.jsonl.")
@click.option("--account-type", type=click.Choice(["subscription", "service"]), default=None,
              help="Account type to play: what it may call, its mass-send quota "
                   "(default: config/account.yaml's type).")
@click.option("--verified", type=click.BOOL, default=None, metavar="true|false",
              help="Whether the account played is verified (微信认证); an unverified one may "
                   "call almost nothing (default: config/account.yaml's verified).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=DELIVERY_TIMEOUT,
              show_default=True, help="Seconds the page's deliveries wait.")
@clock_options
def api(host: str, port: int, allow_hosts: tuple[str, ...], webhook: str, log_path: Path | None,
        account_type: str | None, verified: bool | None, timeout: float, now: str | None,
        speed: float | None) -> None:
    """Serve the fake WeChat API and the chat page (Ctrl-C stops)."""
    from werkzeug.serving import make_server

    from bot.simulator.api import create_api
    from bot.simulator.chat import playing
    from bot.wechat import privileges

    account = open_services(offline=True)  # the account the simulator plays WeChat for
    settings, config = account.settings, account.config
    virtual = _install_clock(now, speed)
    log_path = log_path or settings.data_dir / "sim" / "deliveries.jsonl"
    account_type = account_type or config.account.type
    verified = config.account.verified if verified is None else verified
    app = create_api(
        settings,
        webhook_url=webhook,
        log_path=log_path,
        account_type=account_type,
        verified=verified,
        timezone=config.account.timezone,
        menu_fallback=config.menu.to_api() if config.menu.buttons else None,
        timeout=timeout,
        virtual_clock=virtual,
        allowed_hosts=(*allow_hosts, f"[{host}]" if ":" in host else host),
    )
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request is noise
    click.echo(f"WeChat simulator: chat page http://{host}:{server.server_port}/ (fake API "
               f"{settings.appid}, "
               f"webhook {webhook}, {settings.mode} mode)")
    click.echo(f"delivery log: {log_path}")
    click.echo(playing(privileges.describe(account_type, verified),
                       privileges.channels_for(account_type, verified)))
    if allow_hosts:
        click.echo(f"also serving Host {', '.join(allow_hosts)} (besides loopback names)")
    if virtual is not None:
        click.echo(f"virtual time from {datetime.fromtimestamp(virtual.now()).astimezone()}"
                   f" at {virtual.speed}x")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        click.echo("simulator stopped")


@sim.command()
@click.argument("text")
@driver_options
@click.option("--json", "as_json", is_flag=True, help="Print the exchange as JSON.")
def send(text: str, user: str, url: str, mode: str | None, api_base: str | None,
         no_report: bool, timeout: float, deliveries: int, now: str | None,
         speed: float | None, as_json: bool) -> None:
    """Do one exchange (TEXT is a message or a slash command) and print the reply."""
    try:
        action = parse_action(text)
    except ActionError as exc:
        raise click.UsageError(str(exc)) from None
    driver, base = _driver(url, mode, api_base, no_report, timeout, deliveries)
    _install_clock(now, speed, base)
    exchange = driver.act(user, action)
    if as_json:
        summary = exchange.to_json()
        click.echo(json.dumps({k: summary[k] for k in
                               ("user", "sent", "reply_type", "text", "shown", "problem", "ms",
                                "deliveries")}, ensure_ascii=False))
    else:
        from bot.simulator.chat import describe

        click.echo(describe(exchange))
    if exchange.problem:
        sys.exit(1)


@sim.command()
@click.option("--url", default=DEFAULT_WEBHOOK, show_default=True, envvar="BOT_WEBHOOK_URL")
def verify(url: str) -> None:
    """Check the webhook's URL and token as the platform's server configuration page does."""
    problem = Driver(url, _settings()).handshake()
    if problem:
        raise click.ClickException(f"{url}: {problem}")
    click.echo(f"{url}: token verified (echostr echoed)")


@sim.command()
@driver_options
def chat(user: str, url: str, mode: str | None, api_base: str | None, no_report: bool,
         timeout: float, deliveries: int, now: str | None, speed: float | None) -> None:
    """Chat with the account as one subscriber; pushes appear as they arrive."""
    from bot.simulator.chat import run_chat

    driver, base = _driver(url, mode, api_base, no_report, timeout, deliveries)
    _install_clock(now, speed, base)

    def typed() -> Iterator[str]:
        while True:
            try:
                yield input(f"{user}> ")
            except EOFError:
                return

    try:
        run_chat(driver, user, typed(), click.echo, api_base=base)
    except KeyboardInterrupt:
        click.echo("")


sim.add_command(scenario, "scenario")

COMMANDS = [sim]

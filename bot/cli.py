"""``python -m bot ...``: the command line of the bot.

The root group lives here with the process commands (``run``, ``web``, ``worker``, ``check``,
``menu``); each area adds its own group from a ``commands`` module of its own
(``search``/``content`` from ``bot.search.commands``, ``push`` from ``bot.push.commands``, ``sim``
from ``bot.simulator.commands``), registered in :func:`main`. Every command that needs the bot's
parts takes them from :func:`open_services` (the composition root, :mod:`bot.services`).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING

import click

from bot import clock
from bot.config import ConfigError
from bot.settings import Settings, SettingsError

if TYPE_CHECKING:
    from bot.services import Services

AREA_COMMANDS = ("bot.search.commands", "bot.push.commands", "bot.simulator.commands")
"""Modules that each export ``COMMANDS``: click commands or groups added to the root group."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """A respectful WeChat official-account bot: answers from content/, throttled digests."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        clock.install_from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def load_settings() -> Settings:
    """Settings from the environment, or exit with the variable named."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def open_services(offline: bool = False) -> Services:
    """The bot's services from the environment, or exit naming the variable or file that is wrong.

    ``offline``: never connect to Redis (commands about content/ alone).
    """
    from bot import services

    try:
        return services.build(offline=offline)
    except (SettingsError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--port", default=8700, show_default=True, envvar="BOT_PORT", help="Webhook port.")
@click.option(
    "--sim-port",
    default=8701,
    show_default=True,
    envvar="BOT_SIM_PORT",
    help="Port of the simulator (fake WeChat API and chat page).",
)
@click.option("--no-sim", is_flag=True, help="Do not start the simulator.")
@click.option(
    "--now",
    "start",
    default=None,
    metavar="ISO8601",
    help="Run every process on one virtual clock starting at this time.",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Virtual seconds per real second (with --now).",
)
def run(port: int, sim_port: int, no_sim: bool, start: str | None, speed: float) -> None:
    """Run everything: embedded Redis, webhook, worker with scheduler, simulator. Ctrl-C stops."""
    from bot.runner import run_all

    if start is not None:
        try:
            os.environ[clock.ENV] = clock.share(clock.parse_moment(start), speed)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--now") from None
        click.echo(
            f"virtual time from {start} at {speed:g}x; for commands in other "
            f"terminals: export {clock.ENV}={os.environ[clock.ENV]}"
        )
    sys.exit(run_all(load_settings(), port=port, sim_port=None if no_sim else sim_port))


@cli.command()
@click.option(
    "--port", default=8700, show_default=True, envvar=["PORT", "BOT_PORT"],
    help="Port to listen on (env PORT or BOT_PORT).",
)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option(
    "--workers", default=2, show_default=True, envvar="WEB_CONCURRENCY",
    help="gunicorn worker processes (env WEB_CONCURRENCY).",
)
def web(port: int, host: str, workers: int) -> None:
    """Serve the webhook under gunicorn: the Procfile's web line, and what `run` starts."""
    from bot.runner import gunicorn_command
    from bot.services import validate

    settings = load_settings()
    try:
        validate(settings.config_dir)  # fail here, naming the file, not in every gunicorn worker
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    os.execvp(sys.executable, gunicorn_command(port=port, workers=workers, host=host))


@cli.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
def worker(burst: bool) -> None:
    """Run an RQ worker with its scheduler (what the Procfile's worker line runs)."""
    from bot import services
    from bot.worker import run_worker

    try:
        services.current()  # what every job of this process uses, built and checked once
    except (SettingsError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    run_worker(burst=burst)


@cli.group()
def menu() -> None:
    """The custom menu defined in config/menu.yaml."""


@menu.command("push")
def menu_push() -> None:
    """Check config/menu.yaml against the platform's limits and create the menu through the API."""
    from bot.wechat import privileges
    from bot.wechat.api import ApiError

    services = open_services()
    buttons = services.config.menu.buttons
    if not buttons:
        menu_file = services.settings.config_dir / "menu.yaml"
        raise click.ClickException(f"{menu_file} defines no buttons")
    account = services.config.account
    if not privileges.allowed("menu", account.type, account.verified):
        raise click.ClickException(
            f"this {privileges.describe(account.type, account.verified)} may not set its menu "
            "through the API (48001): set it in the official-account console (自定义菜单), "
            "or set verified: true in config/account.yaml once WeChat verified the account")
    try:
        services.api.create_menu(services.config.menu.to_api())
    except ApiError as exc:
        raise click.ClickException(f"menu/create failed: {exc}") from None
    click.echo(f"menu created with {len(buttons)} top-level buttons")


@cli.command()
def check() -> None:
    """Validate the environment and every YAML file under config/; exit 1 naming the problem."""
    from bot.services import validate

    settings = load_settings()
    try:
        validate(settings.config_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{settings.config_dir}: OK")


def main() -> None:
    """Run the command line, with every area's commands registered."""
    for module_name in AREA_COMMANDS:
        for command in importlib.import_module(module_name).COMMANDS:
            cli.add_command(command)
    cli(prog_name="python -m bot")

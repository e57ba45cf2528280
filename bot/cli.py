"""``python -m bot ...``: the command line of the bot.

The root group lives here with the process commands (``run``, ``web``, ``worker``, ``menu``);
each area adds its own group from a ``commands`` module of its own (``search``/``content`` from
``bot.search.commands``, ``sim`` from ``bot.simulator.commands``, ``push`` from
``bot.push.commands``), registered in :func:`main`.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from bot import clock
from bot.config import ConfigError
from bot.settings import Settings, SettingsError

AREA_COMMANDS = ("bot.search.commands", "bot.simulator.commands", "bot.push.commands")
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
@click.option("--port", default=8700, show_default=True, envvar="BOT_PORT")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
def web(port: int, workers: int) -> None:
    """Serve the webhook under gunicorn (what the Procfile's web line runs)."""
    from bot.runner import gunicorn_command

    load_settings()
    os.execvp(sys.executable, gunicorn_command(port=port, workers=workers))


@cli.command()
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then exit.")
def worker(burst: bool) -> None:
    """Run an RQ worker with its scheduler (what the Procfile's worker line runs)."""
    from bot.jobs import run_worker

    run_worker(load_settings(), burst=burst)


@cli.group()
def menu() -> None:
    """The custom menu defined in config/menu.yaml."""


@menu.command("push")
def menu_push() -> None:
    """Check config/menu.yaml against the platform's limits and create the menu through the API."""
    from bot.config import load_config
    from bot.wechat_api import ApiError, WeChatApi

    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not config.menu.buttons:
        raise click.ClickException(f"{settings.config_dir / 'menu.yaml'} defines no buttons")
    from bot import state

    client = state.connect(state.resolve_url(settings.redis_url, settings.data_dir))
    api = WeChatApi.from_settings(settings, client)  # the token every process shares
    try:
        api.create_menu(config.menu.to_api())
    except ApiError as exc:
        raise click.ClickException(f"menu/create failed: {exc}") from None
    click.echo(f"menu created with {len(config.menu.buttons)} top-level buttons")


@cli.command()
def check() -> None:
    """Validate the environment and every file under config/; exit 1 naming the first problem."""
    from bot.config import load_config

    settings = load_settings()
    try:
        load_config(settings.config_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{settings.config_dir}: OK")


def main() -> None:
    """Run the command line, with every area's commands registered."""
    for module_name in AREA_COMMANDS:
        for command in importlib.import_module(module_name).COMMANDS:
            cli.add_command(command)
    from bot.push.scenario import scenario  # the push area's replay, run as WeChat: under `sim`

    cli.commands["sim"].add_command(scenario, "scenario")
    cli(prog_name="python -m bot")

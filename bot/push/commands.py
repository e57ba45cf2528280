"""``python -m bot push ...``: preview, run and report digests; the scheduler process.

The synthetic month of subscribers (:mod:`bot.push.scenario`) is ``python -m bot sim scenario``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import click

from bot import clock
from bot.config import ConfigError, load_config
from bot.settings import Settings, SettingsError


def _setup():  # noqa: ANN202 - runs.Setup, imported lazily to keep --help fast
    from bot import state
    from bot.push import runs
    from bot.wechat_api import WeChatApi

    try:
        settings = Settings.from_env()
        config = load_config(settings.config_dir)
    except (SettingsError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    r = state.connect(state.resolve_url(settings.redis_url, settings.data_dir))
    return runs.Setup(r, config, WeChatApi.from_settings(settings, r), settings.content_dir)


def _when(text: str | None, timezone: str) -> float:
    """``--now`` as epoch seconds: ISO 8601 (in ``timezone`` when it has no offset) or a number."""
    if not text:
        return clock.now()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r}: use ISO 8601 like 2030-01-06T09:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed.timestamp()


def _run_of(setup, digest: str, now: float) -> str:  # noqa: ANN001
    from bot.push import runs

    try:
        found = setup.digest(digest)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return runs.run_id(found.name, runs.last_slot(found, setup.config.account.timezone, now))


@click.group()
def push() -> None:
    """Digest pushes defined in config/push.yaml."""


@push.command("preview")
@click.argument("digest")
@click.option("--user", "user", help="Only this openid, with the articles it would get.")
@click.option("--limit", default=20, show_default=True, help="Subscribers listed one by one.")
def preview_command(digest: str, user: str | None, limit: int) -> None:
    """Show who would get DIGEST now and why the others would not (nothing is sent)."""
    from bot.push import runs

    setup = _setup()
    run = _run_of(setup, digest, clock.now())
    slot = runs.parse_run(run)[1]
    openids = (
        [user]
        if user
        else [o for batch in runs.members(setup.redis, runs.CHUNK_SIZE, until=slot) for o in batch]
    )
    totals: Counter[str] = Counter()
    shown = 0
    for i in range(0, len(openids), runs.CHUNK_SIZE):
        for openid, reason, items in runs.preview(setup, run, openids[i : i + runs.CHUNK_SIZE]):
            totals[reason] += 1
            if shown < limit:
                shown += 1
                titles = "; ".join(item.title for item in items) or "-"
                click.echo(f"{openid}  {reason:<22} {titles}")
    click.echo(
        f"run {run}: "
        + (
            ", ".join(f"{k} {v}" for k, v in totals.most_common())
            or "nobody had followed by this slot"
        )
    )


@push.command("run")
@click.argument("digest")
@click.option("--now", "now", help="Run the slot at this time (ISO 8601 or epoch); default now.")
def run_command(digest: str, now: str | None) -> None:
    """Run DIGEST's slot in this process, with a progress bar (decisions use the server clock)."""
    from bot.push import runs

    setup = _setup()
    run = _run_of(setup, digest, _when(now, setup.config.account.timezone))
    runs.start_run(setup.redis, run, clock.now())  # the scheduler will not plan it again
    size = runs.chunk_size(setup.digest(runs.parse_run(run)[0]))
    chunks = list(runs.members(setup.redis, size, until=runs.parse_run(run)[1]))
    totals: Counter[str] = Counter()
    with click.progressbar(chunks, label=f"run {run}", show_pos=True) as bar:
        for openids in bar:
            totals.update(runs.process_chunk(setup, run, openids))
    runs.mark_planned(setup.redis, run, len(chunks))
    runs.warn_left_out(setup, run)
    click.echo(
        ", ".join(f"{k} {v}" for k, v in totals.most_common()) or "nobody had followed by this slot"
    )


@push.command("report")
@click.option("--days", default=7, show_default=True, help="How many days back.")
def report_command(days: int) -> None:
    """Decisions by reason per day, with a chart; then each mass send with its receipt."""
    from bot.push import report

    setup = _setup()
    today = dt.datetime.fromtimestamp(clock.now(), dt.UTC).date()
    counts = report.daily(setup.redis, days, today)
    click.echo(report.table(counts))
    click.echo()
    click.echo(report.chart(counts))
    first = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(), dt.UTC)
    sends = report.mass_sends(setup.redis, first.timestamp())
    if sends:
        click.echo()
        click.echo("\n".join(sends))


@push.command("scheduler")
@click.option("--once", is_flag=True, help="Tick once and exit.")
def scheduler_command(once: bool) -> None:
    """Enqueue due digest runs every 30 s (the Procfile's scheduler line)."""
    from bot.push.scheduler import run_scheduler

    setup = _setup()
    run_scheduler(setup.redis, setup.config, once=once)


@push.command("reconcile")
@click.argument("run")
def reconcile_command(run: str) -> None:
    """Close RUN (e.g. daily@1893891600): stale reservations -> unknown, undecided -> decided."""
    from bot.push import runs

    setup = _setup()
    counts = runs.reconcile(setup, run)
    click.echo(", ".join(f"{k} {v}" for k, v in counts.most_common()) or "nothing to do")


COMMANDS = [push]

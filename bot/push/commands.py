"""``python -m bot push ...``: preview, run and report digests; the scheduler process.

The synthetic month of subscribers is the simulator's ``python -m bot sim scenario``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from bot import clock
from bot.cli import open_services

if TYPE_CHECKING:
    from bot.services import Services


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


def _run_of(services: Services, digest: str, now: float) -> str:
    from bot.push import runs

    try:
        found = services.config.push.digest(digest)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    return runs.run_id(found.name, runs.last_slot(found, services.config.account.timezone, now))


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

    services = open_services()
    run = _run_of(services, digest, clock.now())
    slot = runs.parse_run(run)[1]
    openids = (
        [user]
        if user
        else [
            o for batch in runs.members(services.redis, runs.CHUNK_SIZE, until=slot) for o in batch
        ]
    )
    totals: Counter[str] = Counter()
    shown = 0
    for i in range(0, len(openids), runs.CHUNK_SIZE):
        for openid, reason, items in runs.preview(services, run, openids[i : i + runs.CHUNK_SIZE]):
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

    services = open_services()
    run = _run_of(services, digest, _when(now, services.config.account.timezone))
    channel = services.config.push.digest(runs.parse_run(run)[0]).channel
    if channel == "visit":
        raise click.ClickException(
            f"{digest} is a visit digest: it rides on replies to subscribers' messages, "
            "one at a time; there is no run to send (push preview shows who would get it)")
    runs.start_run(services.redis, run, clock.now())  # the scheduler will not plan it again
    totals: Counter[str] = Counter()
    if channel == "tag":
        from bot.push import tags

        try:
            totals.update(tags.broadcast(services, run))
        except tags.NotYet as wait:
            raise click.ClickException(
                f"{run}: {wait}; the caps would leave out everyone it reached: run it then"
            ) from None
        chunks: list[list[str]] = []
    else:
        size = runs.chunk_size(services.config.push.digest(runs.parse_run(run)[0]))
        chunks = list(runs.members(services.redis, size, until=runs.parse_run(run)[1]))
        with click.progressbar(chunks, label=f"run {run}", show_pos=True) as bar:
            for openids in bar:
                totals.update(runs.process_chunk(services, run, openids))
    runs.mark_planned(services.redis, run, len(chunks))
    click.echo(
        ", ".join(f"{k} {v}" for k, v in totals.most_common()) or "nobody had followed by this slot"
    )


@push.command("report")
@click.option("--days", default=7, show_default=True, help="How many days back.")
def report_command(days: int) -> None:
    """Decisions by reason per day, with a chart; then each mass send with its receipt."""
    from bot.push import report

    services = open_services()
    today = dt.datetime.fromtimestamp(clock.now(), dt.UTC).date()
    counts = report.daily(services.redis, days, today)
    click.echo(report.table(counts))
    click.echo()
    click.echo(report.chart(counts))
    first = dt.datetime.combine(today - dt.timedelta(days=days - 1), dt.time(), dt.UTC)
    sends = report.mass_sends(services.redis, first.timestamp())
    if sends:
        click.echo()
        click.echo("\n".join(sends))


@push.command("scheduler")
@click.option("--once", is_flag=True, help="Tick once and exit.")
def scheduler_command(once: bool) -> None:
    """Enqueue due digest runs every 30 s (the Procfile's scheduler line)."""
    from bot.push.scheduler import run_scheduler

    services = open_services()
    run_scheduler(services.redis, services.config, once=once)


@push.command("reconcile")
@click.argument("run")
def reconcile_command(run: str) -> None:
    """Close RUN (e.g. daily@1893891600): stale reservations -> unknown, undecided -> decided."""
    from bot.push import runs

    services = open_services()
    counts = runs.reconcile(services, run)
    click.echo(", ".join(f"{k} {v}" for k, v in counts.most_common()) or "nothing to do")


COMMANDS = [push]

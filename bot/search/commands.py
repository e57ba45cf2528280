"""Command line of search: ``search`` asks the library, ``content check|reload`` tends content/."""

from __future__ import annotations

import json
import sys

import click

from bot.cli import load_settings, open_services
from bot.config import ConfigError


@click.command("search")
@click.argument("question")
@click.option("-k", "k", default=5, show_default=True, help="How many passages to list.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def search(question: str, k: int, as_json: bool) -> None:
    """Rank passages of content/ for QUESTION, with scores and sources, and show the reply."""
    try:
        library = open_services(offline=True).library
    except ConfigError as exc:  # the analyzer's word lists are read when the library opens
        raise click.ClickException(str(exc)) from None
    hits = library.search(question, k=k)
    answer = library.answer(question)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "hits": [hit.__dict__ for hit in hits],
                    "answer": answer.__dict__,
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    for rank, hit in enumerate(hits, 1):
        click.echo(f"{rank}. {hit.score:.3f}  {hit.source}  《{hit.title}》")
        click.echo(f"   {hit.text}")
    if not hits:
        click.echo("no passage matches")
    click.echo(f"\nreply ({'found' if answer.found else 'no match'}, {answer.score:.3f}):")
    click.echo(answer.text)


@click.group("content")
def content() -> None:
    """The articles under content/ (BOT_CONTENT_DIR)."""


@content.command("check")
def content_check() -> None:
    """List every file that cannot be loaded, with line and fix; exit 1 if there is any."""
    from bot.search.service import check_content

    articles, problems = check_content(load_settings())
    for problem in problems:
        click.echo(problem)
    click.echo(f"{articles} articles loaded, {len(problems)} problems")
    sys.exit(1 if problems else 0)


@content.command("reload")
def content_reload() -> None:
    """Re-index content/ now and make running web processes rescan it on their next request."""
    from bot import state

    services = open_services(offline=True)
    try:
        library = services.library
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    from bot.search.service import reload_everywhere

    client = state.running(services.settings.redis_url, services.settings.data_dir)
    generation = reload_everywhere(library, client)
    status = library.status()
    click.echo(f"{status['articles']} articles, {status['passages']} passages indexed")
    for problem in status["problems"]:
        click.echo(f"problem: {problem}")
    if generation is None:
        click.echo("Redis not reachable: only processes sharing this machine's index were told")
        return
    click.echo(f"running processes told to rescan (generation {generation})")


COMMANDS = [search, content]

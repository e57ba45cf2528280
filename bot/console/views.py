"""The console's pages under ``/admin``: overview, unanswered questions, a subscriber's story,
content; login and logout. Reads and acts on the bot's own services (:mod:`bot.services`).

Every page but the login form needs a session (:mod:`bot.console.auth`): without one, a GET is
sent to ``/admin/login`` and anything else gets 403. Every POST needs the session's CSRF token.
Responses are never cached and carry a strict Content-Security-Policy (scripts from ``/admin/
static`` only), ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``. No page shows a
secret: the admin token, the app secret, the AES key and the WeChat token appear nowhere.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import redis
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from bot import clock, unanswered
from bot.console import figures, story, words
from bot.console.auth import Gate, Session
from bot.push import report, runs
from bot.wechat import privileges

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static")

LANG_COOKIE = "bot_admin_lang"
OPEN = frozenset({"console.login", "console.static"})
"""Endpoints reachable without a session."""

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
GROUPS_SHOWN = 200
"""Groups of unanswered questions the page lists (the newest)."""


def _services() -> Services:
    return current_app.extensions["bot.services"]


def _gate() -> Gate:
    return current_app.extensions["bot.console"]


# --- every request ------------------------------------------------------------------------------


@bp.before_request
def _before() -> Response | None:
    g.lang = _language()
    if request.endpoint in OPEN:
        return None
    session = _gate().session_of(request)
    if session is None:
        if request.method == "GET":
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        log.warning("console: %s %s without a session from %s", request.method, request.path,
                    request.remote_addr)
        abort(403)
    g.session = session
    if request.method == "POST" and not Gate.csrf_holds(session, request):
        log.warning("console: %s %s without a valid CSRF token from %s", request.method,
                    request.path, request.remote_addr)
        return make_response(render_template("console/refused.html",
                                             message=words.word("csrf", g.lang)), 403)
    return None


@bp.after_request
def _after(response: Response) -> Response:
    for name, value in HEADERS.items():
        if request.endpoint == "console.static" and name == "Cache-Control":
            continue
        response.headers[name] = value
    if request.args.get("lang") in words.LANGUAGES:
        response.set_cookie(LANG_COOKIE, request.args["lang"], max_age=365 * 86400,
                            path="/admin", httponly=True, samesite="Strict",
                            secure=request.is_secure)
    return response


@bp.errorhandler(redis.RedisError)
def _redis_down(error: redis.RedisError) -> tuple[str, int]:
    log.error("console: Redis is not usable (%s: %s)", type(error).__name__, error)
    return render_template("console/refused.html", message=t("redis.down")), 503


def _language() -> str:
    chosen = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    if chosen in words.LANGUAGES:
        return chosen
    return request.accept_languages.best_match(words.LANGUAGES, default="zh") or "zh"


@bp.app_template_global()
def t(key: str, **values: object) -> str:
    """A console word in the page's language."""
    return words.word(key, g.get("lang", "zh"), **values)


@bp.app_template_global()
def why(name: str, **values: object) -> str:
    """What a digest decision means, in the page's language."""
    limits = _services().config.push.limits
    values = {"inactive": limits.inactive_days, "day": limits.per_day, "week": limits.per_week,
              **values}
    return words.reason(name, g.get("lang", "zh"), **values)


@bp.app_template_global()
def badge(name: str) -> str:
    """The CSS class of a decision's badge."""
    return words.badge(name)


@bp.app_template_global()
def when(at: float | str | None) -> str:
    """Epoch seconds as a local time of the account's zone ('' for none)."""
    if not at:
        return ""
    zone = ZoneInfo(_services().config.account.timezone)
    moment = dt.datetime.fromtimestamp(float(at), zone)
    return moment.strftime("%Y-%m-%d %H:%M ") + (moment.tzname() or "")


@bp.app_template_global()
def ago(at: float | str | None) -> str:
    """How long ago ``at`` was, roughly."""
    if not at:
        return t("never")
    seconds = max(clock.now() - float(at), 0)
    zh = g.get("lang") == "zh"
    for size, one_zh, one_en in ((86400, "天", "d"), (3600, "小时", "h"), (60, "分钟", "min")):
        if seconds >= size:
            n = int(seconds // size)
            return t("ago", when=f"{n} {one_zh}" if zh else f"{n} {one_en}")
    return t("ago", when="<1 分钟" if zh else "<1 min")


# --- login --------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    """The login form; a right ``token`` starts a session."""
    gate = _gate()
    address = request.remote_addr or "unknown"
    target = _safe_next(request.values.get("next", ""))
    if request.method == "GET":
        notice = t("login.out") if request.args.get("out") else ""
        return render_template("console/login.html", next=target, notice=notice)
    wait = gate.locked_out(address)
    if wait:
        log.warning("console: login refused from %s, locked out for %d s", address, wait)
        body = render_template("console/login.html", next=target,
                               error=t("login.locked", minutes=-(-wait // 60)))
        return make_response(body, 429, {"Retry-After": str(wait)})
    if not gate.token_matches(request.form.get("token", "")):
        gate.failed(address)
        return render_template("console/login.html", next=target, error=t("login.wrong")), 403
    _, cookie = gate.open(address)
    response = redirect(target)
    gate.set_cookie(response, cookie, secure=request.is_secure)
    return response


@bp.post("/logout")
def logout() -> Response:
    """End the session: its cookie opens nothing any more."""
    session: Session = g.session
    _gate().close(session)
    log.info("console: logout from %s", request.remote_addr)
    response = redirect(url_for("console.login", out=1))
    Gate.drop_cookie(response, secure=request.is_secure)
    return response


def _safe_next(target: str) -> str:
    """Where to go after logging in: a console path, never another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin") or "\\" in target:
        return url_for("console.overview")
    return target


# --- pages --------------------------------------------------------------------------------------


@bp.get("/")
@bp.get("")
def overview() -> str:
    """Today and the last 30 days: questions, answers, follows, opt-outs, digests by reason."""
    services = _services()
    today = dt.datetime.fromtimestamp(clock.now(), dt.UTC).date()
    shown = figures.overview(services.redis, today, g.lang)
    account = services.config.account
    first = dt.datetime.combine(today - dt.timedelta(days=figures.DAYS - 1), dt.time(), dt.UTC)
    return render_template(
        "console/overview.html", page="overview", shown=shown,
        kind=privileges.describe(account.type, account.verified),
        channels=privileges.channels_for(account.type, account.verified),
        digests=services.config.push.digests, account=account,
        receipts=report.mass_sends(services.redis, first.timestamp()),
    )


@bp.get("/questions")
def questions() -> str:
    """The questions the articles could not answer, grouped, counted, newest first."""
    services = _services()
    kept = services.config.console.question_log_days
    days = _int(request.args.get("days"), kept, 1, kept)
    found = unanswered.recent(services.redis, days)
    groups = unanswered.groups(found)
    return render_template("console/questions.html", page="questions", groups=groups[:GROUPS_SHOWN],
                           total=len(found), group_count=len(groups), days=days, kept=kept,
                           periods=[d for d in (1, 7, 30, 90, 365) if d < kept] + [kept])


@bp.get("/subscriber")
def subscriber() -> str:
    """A subscriber's story, by openid (typed or picked)."""
    return _subscriber_page(request.args.get("openid", "").strip())


@bp.post("/subscriber/preview")
def preview() -> str:
    """What a digest would decide for the subscriber now (nothing is reserved or sent)."""
    services = _services()
    openid = request.form.get("openid", "").strip()
    try:
        digest = services.config.push.digest(request.form.get("digest", ""))
    except ValueError:
        abort(400)
    run = runs.run_id(digest.name, runs.last_slot(digest, services.config.account.timezone,
                                                  clock.now()))
    result = runs.preview(services, run, [openid])[0] if _valid_openid(openid) else None
    return _subscriber_page(openid, preview=(digest.name, result))


def _subscriber_page(openid: str, preview: tuple[str, Any] | None = None) -> str:
    services = _services()
    followers, askers = story.recent_people(services)
    told = story.tell(services, openid) if _valid_openid(openid) else None
    return render_template("console/subscriber.html", page="subscriber", openid=openid,
                           story=told, followers=followers, askers=askers,
                           digests=services.config.push.digests, preview=preview,
                           bad_openid=bool(openid) and told is None)


@bp.get("/content")
def content() -> str:
    """The articles, when each was indexed, and what ``content check`` reports."""
    return _content_page()


@bp.post("/content/reload")
def reload_content() -> str:
    """Re-index content/ now and tell every process (``python -m bot content reload``)."""
    from bot.search.service import reload_everywhere

    services = _services()
    reload_everywhere(services.library, services.redis)
    status = services.library.status()
    log.info("console: content re-indexed from %s", request.remote_addr)
    return _content_page(notice=t("c.reloaded", articles=status["articles"],
                                  passages=status["passages"]))


def _content_page(notice: str = "") -> str:
    from bot.search.service import check_content

    services = _services()
    articles, problems = check_content(services.settings)
    status = services.library.status()
    return render_template("console/content.html", page="content", files=services.library.files(),
                           problems=problems, status=status, notice=notice, loadable=articles)


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(text or default), low), high)
    except ValueError:
        return default


def _valid_openid(openid: str) -> bool:
    """An openid the platform could have made (letters, digits, ``-`` and ``_``)."""
    return 0 < len(openid) <= 64 and all(ch.isascii() and (ch.isalnum() or ch in "-_")
                                         for ch in openid)

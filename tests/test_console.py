"""The operator console at /admin through Flask's test client: off without a token, the login
and its refusals, sessions, CSRF, the rate limit, headers, and what each page shows after real
traffic through the webhook. (The same in a browser: tests/test_console_browser.py.)"""

from __future__ import annotations

import json
import logging
import re

import pytest

from bot import clock, tally, unanswered
from bot.console.auth import COOKIE
from bot.settings import ADMIN_TOKEN_MIN, Settings, SettingsError
from bot.state import Keys

TOKEN = "console-test-token-" + "x" * 24
ALICE = "oAlice000000000000000000000"
BOB = "oBob00000000000000000000000"
NONSENSE = "你们卖不卖火锅底料"


@pytest.fixture
def app(make_app):
    return make_app(admin_token=TOKEN)


@pytest.fixture
def operator(app):
    """A test client logged in to the console."""
    client = app.test_client()
    response = client.post("/admin/login", data={"token": TOKEN})
    assert response.status_code == 302
    return client


def csrf_of(client, path: str = "/admin/content") -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


# --- off, login, session ------------------------------------------------------------------------


def test_the_console_is_off_without_a_token(make_app):
    client = make_app().test_client()
    for path in ("/admin", "/admin/login", "/admin/static/console.js"):
        assert client.get(path).status_code == 404
    assert client.post("/admin/login", data={"token": TOKEN}).status_code == 404


def test_a_short_or_spaced_token_stops_start_up():
    with pytest.raises(SettingsError, match="BOT_ADMIN_TOKEN must be at least 32"):
        Settings.from_env({"BOT_ADMIN_TOKEN": "x" * (ADMIN_TOKEN_MIN - 1)})
    with pytest.raises(SettingsError, match="BOT_ADMIN_TOKEN"):
        Settings.from_env({"BOT_ADMIN_TOKEN": "x" * 20 + " " + "y" * 20})
    assert Settings.from_env({"BOT_ADMIN_TOKEN": "x" * ADMIN_TOKEN_MIN}).admin_token
    assert TOKEN not in repr(Settings(admin_token=TOKEN))


def test_without_a_session_pages_redirect_to_the_login_and_posts_are_refused(app):
    client = app.test_client()
    response = client.get("/admin/questions?days=7")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=/admin/questions")
    assert client.post("/admin/content/reload").status_code == 403
    login = client.get("/admin/login")
    assert login.status_code == 200 and 'name="token"' in login.get_data(as_text=True)


def test_a_wrong_token_is_refused_logged_and_sets_no_cookie(app, caplog):
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="bot.console.auth"):
        response = client.post("/admin/login", data={"token": TOKEN[:-1] + "y"})
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers
    assert "failed login from 127.0.0.1 (1 of 10" in caplog.text
    assert TOKEN not in caplog.text
    assert client.get("/admin").status_code == 302


def test_the_right_token_sets_a_signed_httponly_samesite_cookie(app):
    client = app.test_client()
    response = client.post("/admin/login", data={"token": TOKEN, "next": "/admin/content"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/content"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/admin"):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http here; https gets Secure
    secure = app.test_client().post("/admin/login", data={"token": TOKEN},
                                    base_url="https://console.example")
    assert "Secure" in secure.headers["Set-Cookie"]
    assert client.get("/admin").status_code == 200


def test_a_forged_or_other_tokens_cookie_opens_nothing(app, make_app, fake_redis):
    client = app.test_client()
    client.set_cookie(COOKIE, "not-signed", path="/admin")
    assert client.get("/admin").status_code == 302
    other = make_app(admin_token="another-token-" + "z" * 30).test_client()
    other.post("/admin/login", data={"token": "another-token-" + "z" * 30})
    stolen = other.get_cookie(COOKIE, path="/admin").value
    client.set_cookie(COOKIE, stolen, path="/admin")  # signed with a key derived from another token
    assert client.get("/admin").status_code == 302


def test_login_never_redirects_off_the_console(app):
    for target in ("//evil.example/admin", "https://evil.example/admin", "/wechat",
                   "/admin\\@evil.example"):
        response = app.test_client().post("/admin/login", data={"token": TOKEN, "next": target})
        assert response.headers["Location"] == "/admin", target


def test_failed_logins_lock_the_address_out_even_for_the_right_token(app, fake_redis, caplog):
    client = app.test_client()
    for _ in range(10):
        assert client.post("/admin/login", data={"token": "wrong"}).status_code == 403
    with caplog.at_level(logging.WARNING, logger="bot.console.views"):
        locked = client.post("/admin/login", data={"token": TOKEN})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "locked out" in caplog.text
    fake_redis.delete(Keys.admin_failures("127.0.0.1"))  # the lockout ran out
    assert client.post("/admin/login", data={"token": TOKEN}).status_code == 302


def test_a_post_without_the_csrf_token_is_refused(operator):
    assert operator.post("/admin/content/reload").status_code == 403
    assert operator.post("/admin/content/reload", data={"csrf": "guess"}).status_code == 403
    assert operator.post("/admin/logout").status_code == 403
    done = operator.post("/admin/content/reload", data={"csrf": csrf_of(operator)})
    assert done.status_code == 200 and 'id="notice"' in done.get_data(as_text=True)
    header = operator.post("/admin/content/reload", headers={"X-CSRF-Token": csrf_of(operator)})
    assert header.status_code == 200


def test_after_logging_out_the_same_cookie_opens_nothing(operator):
    token = csrf_of(operator)
    kept = operator.get_cookie(COOKIE, path="/admin").value
    response = operator.post("/admin/logout", data={"csrf": token})
    assert response.status_code == 302 and "out=1" in response.headers["Location"]
    assert operator.get("/admin").status_code == 302
    operator.set_cookie(COOKIE, kept, path="/admin")  # replayed
    assert operator.get("/admin").status_code == 302
    assert operator.post("/admin/content/reload", data={"csrf": token}).status_code == 403


def test_every_page_has_strict_headers_and_shows_no_secret(operator, wechat, app):
    wechat.event("subscribe", ALICE)
    wechat.ask(NONSENSE, ALICE)
    settings = app.extensions["bot.services"].settings
    secrets = [TOKEN, settings.appsecret, settings.aes_key, f">{settings.token}<"]
    for path in ("/admin", "/admin/questions", "/admin/content", "/admin/subscriber",
                 f"/admin/subscriber?openid={ALICE}", "/admin/login"):
        response = operator.get(path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        for secret in secrets:
            assert secret not in body, (path, secret)
        assert response.headers["Cache-Control"] == "no-store"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "<script>" not in body  # no inline script: the CSP would block it
        assert response.headers["X-Frame-Options"] == "DENY"


def test_the_language_follows_the_choice_then_the_browser(operator):
    english = operator.get("/admin?lang=en").get_data(as_text=True)
    assert "Operator console" in english
    assert "Operator console" in operator.get("/admin").get_data(as_text=True)  # kept
    chinese = operator.get("/admin?lang=zh").get_data(as_text=True)
    assert "运营后台" in chinese


# --- what the pages show ------------------------------------------------------------------------


def test_the_overview_counts_the_webhooks_traffic(operator, wechat, fake_redis):
    wechat.event("subscribe", ALICE)
    wechat.event("subscribe", BOB)
    wechat.ask("微信公众平台的价值观是什么", ALICE)
    wechat.ask(NONSENSE, ALICE)
    wechat.ask("退订", BOB)
    wechat.event("unsubscribe", BOB)
    page = operator.get("/admin?lang=en").get_data(as_text=True)
    cards = dict(re.findall(r'data-name="(\w+)"><div class="big">(\d+)<', page))
    held = cards.pop("digests_held")  # the visit digest decided for Alice's question
    assert cards == {"questions": "2", "answered": "1", "unanswered": "1", "follows": "2",
                     "unfollows": "1", "optouts": "1", "digests_sent": "0"}
    decided = fake_redis.hgetall(Keys.push_report(tally.day_of(clock.now())))
    assert int(held) == sum(int(n) for k, n in decided.items() if "|skipped-" in k) == 1
    specs = {name: json.loads(spec) for name, spec in
             re.findall(r'<script type="application/json" id="data-(\w+)">(.*?)</script>', page)}
    assert set(specs) == {"questions", "people", "digests"}
    today = tally.day_of(clock.now())
    assert specs["questions"]["labels"][-1] == today and len(specs["questions"]["labels"]) == 30
    answered = next(d for d in specs["questions"]["datasets"] if d["label"] == "answered")
    assert answered["data"][-1] == 1
    assert f"<td>{today}</td>" in page  # the table beside the chart


def test_the_digest_chart_counts_decisions_by_reason(operator, fake_redis):
    today = tally.day_of(clock.now())
    fake_redis.hset(Keys.push_report(today), mapping={"daily|sent": 5, "daily|skipped-cap": 2,
                                                      "daily|skipped-quiet": 1})
    page = operator.get("/admin").get_data(as_text=True)
    spec = json.loads(re.search(r'id="data-digests">(.*?)</script>', page).group(1))
    by_reason = {d["label"]: d["data"][-1] for d in spec["datasets"]}
    assert by_reason == {"sent": 5, "skipped-quiet": 1, "skipped-cap": 2}
    assert re.search(r'data-name="digests_held"><div class="big">3<', page)


def test_unanswered_questions_are_grouped_counted_newest_first(operator, wechat):
    for openid, text in [(ALICE, "你们卖火锅吗"), (BOB, "火锅 有卖吗"), (ALICE, "如何退款？"),
                         (BOB, "怎么退款")]:
        wechat.ask(text, openid)
    wechat.ask("微信公众平台的价值观是什么", ALICE)  # answered: not listed
    page = operator.get("/admin/questions").get_data(as_text=True)
    rows = re.findall(r'<span class="text">(.*?)</span>.*?<span class="count">(\d+)</span>'
                      r'</td>\s*<td class="num">(\d+)</td>', page, re.S)
    assert rows == [("怎么退款", "2", "2"), ("火锅 有卖吗", "2", "2")]
    assert "如何退款？" in page and "你们卖火锅吗" in page  # the other wordings
    assert "微信公众平台的价值观是什么" not in page


def test_more_that_finds_nothing_better_is_logged(operator, wechat, fake_redis):
    first = wechat.ask("微信公众平台的价值观是什么", ALICE)
    assert "——《" in first.text
    for _ in range(40):
        reply = wechat.ask("更多", ALICE)
        if "没有更多" in reply.text:
            break
    else:
        pytest.fail("更多 never ran out")
    wechat.ask("更多", ALICE)  # again: still nothing, and not logged twice
    entries = unanswered.of(fake_redis, ALICE, 30)
    assert [(e.text, e.kind) for e in entries] == [("微信公众平台的价值观是什么", "more")]
    assert "「更多」没有更好的段落" in operator.get("/admin/questions").get_data(as_text=True)


def test_a_subscribers_story_tells_why_a_digest_was_held_back(operator, wechat, fake_redis):
    wechat.event("subscribe", ALICE)
    wechat.ask("退订", ALICE)
    wechat.ask("微信公众平台的价值观是什么", ALICE)  # the visit digest decides for her: opted out
    page = operator.get(f"/admin/subscriber?openid={ALICE}&lang=en").get_data(as_text=True)
    assert 'data-reason="skipped-optout"' in page
    assert "opted out (said stop / 退订)" in page
    assert 'id="digests-state">off (said stop)<' in page
    picker = operator.get("/admin/subscriber").get_data(as_text=True)
    assert f"openid={ALICE}" in picker  # among the latest followers to pick from


def test_a_preview_needs_csrf_and_sends_nothing(operator, wechat, fake_redis):
    wechat.event("subscribe", ALICE)
    token = csrf_of(operator, f"/admin/subscriber?openid={ALICE}")
    form = {"openid": ALICE, "digest": "daily"}
    assert operator.post("/admin/subscriber/preview", data=form).status_code == 403
    before = {key: fake_redis.type(key) for key in fake_redis.scan_iter()}
    page = operator.post("/admin/subscriber/preview", data={**form, "csrf": token})
    assert page.status_code == 200 and 'id="preview-result"' in page.get_data(as_text=True)
    assert not [key for key in fake_redis.scan_iter("bot:push:ledger:*")]
    assert {key for key in fake_redis.scan_iter()} >= set(before)


def test_an_unknown_or_malformed_openid_is_said_so(operator):
    page = operator.get("/admin/subscriber?openid=oNobody0000000000000000000").get_data(
        as_text=True)
    assert 'id="unknown"' in page
    bad = operator.get("/admin/subscriber?openid=%3Cscript%3E").get_data(as_text=True)
    assert "<script>" not in bad and "flash error" in bad


def test_the_content_page_lists_articles_indexed_and_problems(operator, app):
    page = operator.get("/admin/content").get_data(as_text=True)
    library = app.extensions["bot.services"].library
    assert library.files() and all(f["path"] in page for f in library.files())
    assert 'id="problems"' in page


def test_the_vendored_chart_library_is_the_one_its_readme_names(app):
    import hashlib
    from pathlib import Path

    vendor = Path(__file__).resolve().parent.parent / "bot/console/static/vendor"
    named = re.search(r"SHA-256 of `chart.umd.min.js` \| `([0-9a-f]{64})`",
                      (vendor / "README.md").read_text("utf-8")).group(1)
    assert hashlib.sha256((vendor / "chart.umd.min.js").read_bytes()).hexdigest() == named
    served = app.test_client().get("/admin/static/vendor/chart.umd.min.js")  # no session needed
    assert served.status_code == 200 and b"Chart" in served.data[:2000]


def test_a_mistake_in_console_yaml_names_file_line_and_key(tmp_path):
    import shutil

    from bot.config import ConfigError, load_config
    from bot.settings import ROOT

    folder = tmp_path / "config"
    shutil.copytree(ROOT / "config", folder)
    text = (folder / "console.yaml").read_text("utf-8")
    (folder / "console.yaml").write_text(
        text.replace("question_log_days: 30", "question_log_days: 0"), "utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(folder)
    line = 1 + next(i for i, row in enumerate(text.splitlines()) if "question_log_days" in row)
    assert f"console.yaml, line {line}, key question_log_days" in str(raised.value)
    assert "greater than or equal to 1" in str(raised.value)


def test_a_redis_outage_is_a_clear_503_not_a_traceback(operator, fake_redis, caplog):
    import redis as redis_py

    def down(*args, **kwargs):
        raise redis_py.ConnectionError("Connection refused")

    fake_redis.execute_command = down
    fake_redis.pipeline = down
    response = operator.get("/admin/questions")
    assert response.status_code == 503
    assert "Traceback" not in response.get_data(as_text=True)
    assert "Redis is not usable (ConnectionError" in caplog.text

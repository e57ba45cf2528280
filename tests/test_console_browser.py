"""The operator console in headless Chromium, after real traffic through the webhook.

The test sends signed questions (some nothing answers), a follow and a 退订 to the webhook over
HTTP, then logs in, sees the charts drawn and the unanswered questions, looks a subscriber up and
reads why a digest was held back; and is refused without the token, with a wrong one, without the
CSRF token and after logging out. Skips, saying why, without Chromium or Playwright.
"""

from __future__ import annotations

import pytest
import requests

from bot.settings import DEV_TOKEN
from bot.simulator.server import BackgroundServer
from bot.simulator.wire import build_message, read_reply, signed_request

pytestmark = pytest.mark.browser

TOKEN = "browser-console-token-" + "k" * 24
ALICE = "oAlice000000000000000000000"
BOB = "oBob00000000000000000000000"
HOTPOT = "你们卖不卖火锅底料"


@pytest.fixture
def bot(make_app):
    """The real app (webhook and console) served over HTTP."""
    server = BackgroundServer(make_app(admin_token=TOKEN, api_base="http://127.0.0.1:1")).start()
    yield server
    server.stop()


def post(bot, openid: str, **fields: str) -> str:
    """Send one signed message or event to the webhook, as WeChat would; the reply's text."""
    kind = "event" if "Event" in fields else "text"
    signed = signed_request(build_message(kind, openid, **fields), "plain", DEV_TOKEN)
    response = requests.post(f"{bot.url}/wechat", params=signed.query, data=signed.body,
                             timeout=10)
    assert response.status_code == 200
    return read_reply(response.content, openid).text if response.content != b"success" else ""


def log_in(page, bot, token: str) -> int:
    """Fill and post the login form; the status of the answer."""
    page.goto(f"{bot.url}/admin")
    page.fill("#token", token)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    return navigation.value.status


def test_the_console_end_to_end(browser_page, bot):
    page = browser_page
    post(bot, ALICE, Event="subscribe")
    post(bot, BOB, Event="subscribe")
    assert "已退订" in post(bot, ALICE, Content="退订")
    # her first question of the day: the visit digest decides for her, and holds it back
    assert "——《" in post(bot, ALICE, Content="微信公众平台的价值观是什么")
    for openid, text in [(ALICE, HOTPOT), (BOB, "火锅底料你们卖不卖？"), (BOB, "外星人什么时候来")]:
        assert "——《" not in post(bot, openid, Content=text)  # nothing answers these

    # without a session: the login form, and nothing else
    page.goto(f"{bot.url}/admin/questions")
    assert "/admin/login" in page.url and page.locator("#token").is_visible()
    assert page.locator("canvas").count() == 0
    assert requests.post(f"{bot.url}/admin/content/reload", timeout=5,
                         allow_redirects=False).status_code == 403

    # a wrong token
    assert log_in(page, bot, TOKEN[:-1] + "x") == 403
    assert page.locator("#login-error").is_visible()
    assert page.context.cookies() == [] or all(c["name"] != "bot_admin"
                                               for c in page.context.cookies())

    # the right one: the overview's charts are drawn, with their tables beside them
    assert log_in(page, bot, TOKEN) == 200
    page.wait_for_function(
        "document.querySelectorAll('canvas[data-rendered=\"1\"]').length === 3")
    unanswered_today = page.evaluate("""() => {
        const chart = Chart.getChart(document.querySelector('canvas[data-chart="data-questions"]'));
        return chart.data.datasets[1].data[chart.data.datasets[1].data.length - 1];
    }""")
    assert unanswered_today == 3
    assert page.locator('#today .card[data-name="optouts"] .big').inner_text() == "1"
    assert page.locator("#fig-questions table.data tbody tr").count() == 31  # 30 days + total
    cookie = next(c for c in page.context.cookies() if c["name"] == "bot_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    # the unanswered questions, grouped: the two hot-pot wordings are one
    page.click("header.top nav a[href='/admin/questions']")
    rows = page.locator("#unanswered tbody tr")
    assert rows.count() == 2
    texts = rows.locator(".text").all_inner_texts()
    assert set(texts) == {"外星人什么时候来", "火锅底料你们卖不卖？"}
    hotpot = rows.filter(has_text="火锅底料你们卖不卖？")
    assert hotpot.locator(".count").inner_text() == "2"
    assert HOTPOT in hotpot.locator("ul.examples").inner_text()

    # a subscriber's story: why she got no digest
    page.click("header.top nav a[href='/admin/subscriber']")
    page.fill("#openid", ALICE)
    page.click("#lookup button[type=submit]")
    decision = page.locator('tr.decision[data-reason="skipped-optout"]')
    assert decision.count() == 1
    assert "退订" in decision.locator("td.why").inner_text()

    # a state-changing request without the CSRF token is refused; with it, it is done
    page.goto(f"{bot.url}/admin/content")
    statuses = page.evaluate("""async () => {
        const bare = await fetch('/admin/content/reload', {method: 'POST'});
        const csrf = document.querySelector('input[name=csrf]').value;
        const body = new URLSearchParams({csrf});
        const right = await fetch('/admin/content/reload', {method: 'POST', body});
        return [bare.status, right.status];
    }""")
    assert statuses == [403, 200]

    # logging out: the console is closed, even to the old cookie
    page.on("dialog", lambda dialog: dialog.accept())
    with page.expect_navigation():
        page.click("#logout")
    assert "/admin/login" in page.url
    page.context.add_cookies([{k: cookie[k] for k in ("name", "value", "domain", "path")}])
    page.goto(f"{bot.url}/admin")
    assert "/admin/login" in page.url and page.locator("canvas").count() == 0
    replayed = requests.get(f"{bot.url}/admin", cookies={"bot_admin": cookie["value"]},
                            allow_redirects=False, timeout=5)
    assert replayed.status_code == 302 and "/admin/login" in replayed.headers["Location"]

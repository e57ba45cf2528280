"""The chat page end to end in headless Chromium (Debian's, driven by Playwright).

Subscribe, ask, click a menu button, watch a push arrive, open the raw XML, switch subscribers;
subscribers named like ``Object.prototype``'s properties; the line cap shown in the chat; a page
reached through DNS rebinding refused. Skips, saying why, when Chromium or Playwright is missing
(``scripts/install-browser`` installs Chromium).
"""

from __future__ import annotations

import pytest

from bot.simulator.api import create_api
from bot.simulator.driver import FAILURE_NOTICE, openid_for
from bot.simulator.page import MAX_LINE_BYTES
from bot.simulator.server import BackgroundServer
from tests.conftest import BROWSER_WAIT_MS, REBOUND

pytestmark = pytest.mark.browser

WAIT_MS = BROWSER_WAIT_MS


@pytest.fixture
def simulator(make_app, settings, config, tmp_path):
    """The real webhook and the simulator process's app, served side by side."""
    webhook = BackgroundServer(make_app(api_base="http://127.0.0.1:1")).start()
    api_app = create_api(settings, webhook_url=webhook.url + "/wechat",
                         log_path=tmp_path / "deliveries.jsonl",
                         menu_fallback=config.menu.to_api())
    api = BackgroundServer(api_app).start()
    yield api
    api.stop()
    webhook.stop()


def bot_bubbles(page) -> list[str]:
    return page.locator("#messages .bubble.bot").all_inner_texts()


def wait_for_bubbles(page, count: int) -> list[str]:
    page.wait_for_function(
        f"document.querySelectorAll('#messages .bubble.bot').length >= {count}",
        timeout=WAIT_MS)
    return bot_bubbles(page)


def test_chat_page_end_to_end(browser_page, simulator, config):
    page = browser_page
    page.goto(simulator.url + "/")
    assert page.locator("#who").inner_text() == "alice"

    page.click("#btn-subscribe")
    welcome = wait_for_bubbles(page, 1)[0]
    assert config.account.welcome.splitlines()[0][:8] in welcome

    page.fill("#text", "微信公众平台的价值观是什么")
    page.press("#text", "Enter")
    answer = wait_for_bubbles(page, 2)[1]
    assert FAILURE_NOTICE not in answer and "价值观" in answer
    mine = page.locator("#messages .bubble.me").all_inner_texts()
    assert mine == ["[关注]", "微信公众平台的价值观是什么"]

    first_click = page.locator("#menu .menu-button[data-key]").first
    first_click.click()
    assert len(wait_for_bubbles(page, 3)) == 3

    platform = simulator.app.extensions["sim.platform"]
    platform.send_custom({"touser": openid_for("alice"), "msgtype": "text",
                          "text": {"content": "本周摘要：价值观公开课"}})
    push = page.locator("#messages .bubble.push")
    push.wait_for()
    assert "本周摘要：价值观公开课" in push.inner_text()
    page.locator("#log li", has_text="本周摘要").wait_for()

    page.locator("#messages .bubble.bot .xml-toggle").last.click()
    raw = page.locator("#messages .bubble.bot pre.xml").last
    assert raw.is_visible()
    assert "<MsgType><![CDATA[event]]></MsgType>" in raw.inner_text()

    page.click('.user[data-user="bob"]')
    assert page.locator("#who").inner_text() == "bob"
    assert page.locator("#messages .bubble").count() == 0
    page.click('.user[data-user="alice"]')
    assert len(bot_bubbles(page)) == 3


def add_subscriber(page, name: str) -> None:
    page.fill("#new-user", name)
    page.press("#new-user", "Enter")
    assert page.locator("#who").inner_text() == name


@pytest.mark.parametrize("name", ["__proto__", "constructor"])
def test_a_subscriber_named_like_an_object_property_chats_and_gets_pushes(
        browser_page, simulator, name):
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(simulator.url + "/")
    add_subscriber(page, name)
    page.click("#btn-subscribe")
    wait_for_bubbles(page, 1)
    page.fill("#text", "微信公众平台的价值观是什么")
    page.press("#text", "Enter")
    answer = wait_for_bubbles(page, 2)[1]
    assert FAILURE_NOTICE not in answer and "价值观" in answer
    assert page.locator("#messages .bubble.me").all_inner_texts() == [
        "[关注]", "微信公众平台的价值观是什么"]

    page.click('.user[data-user="alice"]')
    platform = simulator.app.extensions["sim.platform"]
    platform.send_custom({"touser": openid_for(name), "msgtype": "text",
                          "text": {"content": f"给 {name} 的推送"}})
    page.locator("#log li", has_text=f"给 {name} 的推送").wait_for()
    assert page.locator("#messages .bubble").count() == 0  # alice's timeline is untouched
    page.click(f'.user[data-user="{name}"]')
    push = page.locator("#messages .bubble.push")
    push.wait_for()
    assert f"给 {name} 的推送" in push.inner_text()
    assert len(bot_bubbles(page)) == 2
    assert errors == []


def test_a_line_over_the_cap_is_refused_in_the_chat(browser_page, simulator):
    page = browser_page
    page.goto(simulator.url + "/")
    page.fill("#text", "长" * (MAX_LINE_BYTES // 3 + 1))
    page.press("#text", "Enter")
    refusal = page.locator("#messages .bubble.sys")
    refusal.wait_for()
    assert f"at most {MAX_LINE_BYTES} bytes (16 KiB) a line" in refusal.inner_text()
    assert bot_bubbles(page) == []


def test_a_page_reached_through_dns_rebinding_is_refused(browser_page, simulator):
    page = browser_page
    port = simulator.url.rsplit(":", 1)[1]
    answer = page.goto(f"http://{REBOUND}:{port}/")
    assert answer is not None and answer.status == 403
    refused = page.evaluate("""async () => {
        const r = await fetch("/sim/act", {method: "POST",
            headers: {"Content-Type": "application/json"},
            body: JSON.stringify({user: "alice", line: "/subscribe"})});
        return [r.status, (await r.json()).error];
    }""")
    assert refused[0] == 403 and REBOUND in refused[1]
    assert simulator.app.extensions["sim.platform"].subscribers == {}

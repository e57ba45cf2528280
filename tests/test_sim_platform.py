"""The fake platform's rules: tokens, customer-service windows, mass and template quotas, menus."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import clock
from bot.simulator.deliveries import DeliveryLog
from bot.simulator.platform import (
    MASS_PER_MINUTE,
    TOKEN_DAILY_QUOTA,
    TOKEN_GRACE,
    ApiError,
    Platform,
)

APPID, SECRET = "wx0123456789abcdef", "s" * 32
START = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


@pytest.fixture
def now() -> clock.VirtualClock:
    """A frozen virtual clock at 09:00 Shanghai time on a Monday."""
    virtual = clock.VirtualClock(start=START, speed=0)
    clock.install(virtual)
    return virtual


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def platform(now: clock.VirtualClock, tmp_path, events) -> Platform:
    return Platform(APPID, SECRET, DeliveryLog(tmp_path / "log.jsonl"), notify=events.append)


def text(openid: str | list[str], content: str = "hello") -> dict[str, Any]:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


def code_of(call, *args) -> int:
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value.code


# --- tokens --------------------------------------------------------------------------------------


def test_a_new_token_retires_the_old_one_after_the_grace_period(platform, now):
    old = platform.issue_token("client_credential", APPID, SECRET)["access_token"]
    new = platform.issue_token("client_credential", APPID, SECRET)["access_token"]
    platform.check_token(old)
    now.advance(TOKEN_GRACE + 1)
    assert code_of(platform.check_token, old) == 40001
    platform.check_token(new)


def test_tokens_expire_after_7200_seconds(platform, now):
    answer = platform.issue_token("client_credential", APPID, SECRET)
    assert answer["expires_in"] == 7200
    now.advance(7200)
    assert code_of(platform.check_token, answer["access_token"]) == 42001


@pytest.mark.parametrize(
    ("grant", "appid", "secret", "code"),
    [("password", APPID, SECRET, 40002), ("client_credential", "wxother", SECRET, 40013),
     ("client_credential", APPID, "wrong", 40125)],
)
def test_bad_token_requests(platform, grant, appid, secret, code):
    assert code_of(platform.issue_token, grant, appid, secret) == code


def test_missing_and_unknown_tokens(platform):
    assert code_of(platform.check_token, "") == 41001
    assert code_of(platform.check_token, "made-up") == 40001


def test_token_calls_have_a_daily_quota(platform, now):
    for _ in range(TOKEN_DAILY_QUOTA):
        platform.issue_token("client_credential", APPID, SECRET)
    assert code_of(platform.issue_token, "client_credential", APPID, SECRET) == 45009
    now.advance(24 * 3600)
    platform.issue_token("client_credential", APPID, SECRET)


# --- customer service ----------------------------------------------------------------------------


def test_five_messages_within_48_hours_of_a_user_message(platform, now):
    platform.record("oA", "follow", "alice")
    now.advance(120)  # the follow window is over
    assert code_of(platform.send_custom, text("oA")) == 45015
    platform.record("oA", "message")
    now.advance(47 * 3600)
    for _ in range(5):
        platform.send_custom(text("oA"))
    assert code_of(platform.send_custom, text("oA")) == 45047
    platform.record("oA", "message")  # a new message opens a new window
    platform.send_custom(text("oA"))
    now.advance(48 * 3600 + 1)
    assert code_of(platform.send_custom, text("oA")) == 45015


@pytest.mark.parametrize("activity", ["follow", "scan", "click"])
def test_three_messages_within_a_minute_of_a_follow_scan_or_click(platform, now, activity):
    platform.record("oA", "follow")
    platform.record("oA", activity)
    for _ in range(3):
        platform.send_custom(text("oA"))
    assert code_of(platform.send_custom, text("oA")) == 45047
    now.advance(61)
    assert code_of(platform.send_custom, text("oA")) == 45015


def test_custom_send_refusals(platform):
    assert code_of(platform.send_custom, text("oNobody")) == 40003
    platform.record("oA", "message")
    assert code_of(platform.send_custom, text("oA")) == 43004
    platform.record("oA", "follow")
    platform.record("oA", "block")
    assert code_of(platform.send_custom, text("oA")) == 48002
    platform.record("oA", "unblock")
    platform.send_custom(text("oA"))
    platform.record("oA", "unfollow")
    assert code_of(platform.send_custom, text("oA")) == 43004


@pytest.mark.parametrize(
    ("body", "code"),
    [({"touser": "oA", "msgtype": "telegram", "telegram": {}}, 40008),
     ({"touser": "oA", "msgtype": "text"}, 47001),
     ({"touser": "oA", "msgtype": "text", "text": {"content": ""}}, 47001),
     ({"touser": "oA", "msgtype": "news", "news": {"articles": []}}, 47001)],
)
def test_malformed_messages(platform, body, code):
    platform.record("oA", "follow")
    assert code_of(platform.send_custom, body) == code


def test_accepted_messages_go_to_the_delivery_log(platform, tmp_path):
    platform.record("oA", "follow", "alice")
    platform.send_custom({"touser": "oA", "msgtype": "news", "news": {"articles": [
        {"title": "周报", "description": "本周三篇", "url": "https://example.com/a"}]}})
    entry = platform.log.since(0)[0]
    assert entry["time"] == "2026-03-02T09:00:00+08:00"
    assert (entry["openid"], entry["user"], entry["api"], entry["msgtype"]) == \
        ("oA", "alice", "custom", "news")
    assert entry["content"] == "周报\n本周三篇"
    assert '"content": "周报\\n本周三篇"' in (tmp_path / "log.jsonl").read_text(encoding="utf-8")


# --- mass send -----------------------------------------------------------------------------------


def follow(platform: Platform, *openids: str) -> None:
    for openid in openids:
        platform.record(openid, "follow", openid)


def test_a_subscription_account_mass_sends_once_a_day(platform, now, events):
    follow(platform, "oA", "oB", "oC")
    platform.record("oC", "block")
    answer = platform.send_mass({**text([]), "filter": {"is_to_all": True}}, "all")
    assert answer["errcode"] == 0 and answer["msg_id"]
    assert sorted(e["openid"] for e in platform.log.since(0)) == ["oA", "oB"]
    assert {e["msg_id"] for e in platform.log.since(0)} == {answer["msg_id"]}
    assert events == [{"Event": "MASSSENDJOBFINISH", "MsgID": answer["msg_id"],
                       "Status": "send success", "TotalCount": 3, "FilterCount": 2,
                       "SentCount": 2, "ErrorCount": 0}]
    body = {**text([]), "filter": {"is_to_all": True}}
    assert code_of(platform.send_mass, body, "all") == 45028
    now.advance(15 * 3600)  # midnight in Shanghai has passed
    platform.send_mass(body, "all")


def test_a_service_account_reaches_each_follower_four_times_a_month(platform, now):
    platform.account_type = "service"
    follow(platform, "oA", "oB")
    for _ in range(4):
        platform.send_mass(text(["oA"]), "list")
    answer = platform.send_mass(text(["oA", "oB"]), "list")
    assert [e["openid"] for e in platform.log.since(0) if e["msg_id"] == answer["msg_id"]] == \
        ["oB"]
    assert code_of(platform.send_mass, text(["oA"]), "list") == 45028
    now.advance(31 * 24 * 3600)
    platform.send_mass(text(["oA"]), "list")


def test_clientmsgid_makes_mass_send_idempotent(platform, now):
    platform.account_type = "service"
    follow(platform, "oA", "oB")
    body = {**text(["oA", "oB"]), "clientmsgid": "digest-2026-03-02"}
    platform.send_mass(body, "list")
    assert code_of(platform.send_mass, body, "list") == 45065
    assert len(platform.log.since(0)) == 2


def test_mass_calls_have_a_per_minute_quota(platform, now):
    follow(platform, "oA")
    for _ in range(MASS_PER_MINUTE):
        platform.preview_mass(text("oA"))
    assert code_of(platform.preview_mass, text("oA")) == 45011
    now.advance(60)
    assert platform.preview_mass(text("oA"))["errmsg"] == "preview success"


def test_preview_reaches_one_follower_outside_the_quota(platform):
    follow(platform, "oA")
    platform.send_mass({**text([]), "filter": {"is_to_all": True}}, "all")
    platform.preview_mass(text("oA"))
    assert [e["api"] for e in platform.log.since(0)] == ["mass", "preview"]
    assert code_of(platform.preview_mass, text("oNobody")) == 40003


# --- templates and menus -------------------------------------------------------------------------


def test_templates_are_for_service_accounts_and_can_be_refused(platform, events):
    follow(platform, "oA")
    body = {"touser": "oA", "template_id": "T1", "data": {"first": {"value": "新文章"}}}
    assert code_of(platform.send_template, body) == 48001
    platform.account_type = "service"
    answer = platform.send_template(body)
    assert platform.log.since(0)[0]["content"] == "first: 新文章"
    assert events[-1] == {"Event": "TEMPLATESENDJOBFINISH", "MsgID": answer["msgid"],
                          "Status": "success"}
    platform.record("oA", "refuse_templates")
    assert code_of(platform.send_template, body) == 43101
    assert code_of(platform.send_template, {**body, "template_id": ""}) == 40037


def test_menu_create_and_get(platform):
    assert code_of(platform.get_menu) == 46003
    menu = {"button": [{"type": "click", "name": "帮助", "key": "HELP"},
                       {"name": "更多", "sub_button": [
                           {"type": "view", "name": "官网", "url": "https://example.com/"}]}]}
    platform.create_menu(menu)
    assert platform.get_menu() == {"menu": menu}
    platform.delete_menu()
    assert code_of(platform.get_menu) == 46003


@pytest.mark.parametrize(
    ("buttons", "code"),
    [([], 40016),
     ([{"type": "click", "name": "x", "key": "K"}] * 4, 40016),
     ([{"type": "click", "name": "超过十六个字节的名字", "key": "K"}], 40018),
     ([{"type": "click", "name": "x"}], 40019),
     ([{"type": "teleport", "name": "x"}], 40017),
     ([{"type": "view", "name": "x", "url": "ftp://x"}], 40054),
     ([{"name": "x", "sub_button": [{"type": "click", "name": "y", "key": "K"}] * 6}], 40023)],
)
def test_menu_limits(platform, buttons, code):
    assert code_of(platform.create_menu, {"button": buttons}) == code


def test_unknown_activity_is_refused(platform):
    with pytest.raises(ValueError, match="unknown activity"):
        platform.record("oA", "dance")

"""The fake platform's rules: privileges, tokens (plain and stable), customer-service windows, mass
and template quotas, user tags, menus, passive replies in the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot import clock
from bot.simulator import tags as tags_module
from bot.simulator.deliveries import DeliveryLog
from bot.simulator.platform import (
    MASS_PER_MINUTE,
    STABLE_FORCE_GAP,
    STABLE_FORCE_PER_DAY,
    STABLE_RENEW,
    TAG_BATCH,
    TAG_FIRST_ID,
    TAG_LIMIT,
    TAGS_PER_USER,
    TOKEN_DAILY_QUOTA,
    TOKEN_GRACE,
    ApiError,
    Platform,
)
from bot.wechat import privileges

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
    assert entry["time"] == "2026-03-02T09:00:00.000+08:00"
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
    follow(platform, "oA", "oB", "oC")
    for _ in range(4):
        platform.send_mass(text(["oA", "oC"]), "list")
    answer = platform.send_mass(text(["oA", "oB"]), "list")
    assert [e["openid"] for e in platform.log.since(0) if e["msg_id"] == answer["msg_id"]] == \
        ["oB"]
    assert code_of(platform.send_mass, text(["oA", "oC"]), "list") == 45028
    now.advance(31 * 24 * 3600)
    platform.send_mass(text(["oA", "oC"]), "list")


@pytest.mark.parametrize(("size", "code"), [(0, 40130), (1, 40130), (2, 0), (10_000, 0),
                                            (10_001, 40130)])
def test_a_list_mass_send_takes_2_to_10000_openids(platform, size, code):
    platform.account_type = "service"
    follow(platform, "oA", "oB")
    openids = (["oA", "oB"] + [f"oX{i}" for i in range(size)])[:size]
    if code:
        assert code_of(platform.send_mass, text(openids), "list") == code
    else:
        assert platform.send_mass(text(openids), "list")["errcode"] == 0


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


# --- privileges ----------------------------------------------------------------------------------

CALLS: dict[str, tuple[privileges.Capability, Any]] = {
    "custom/send": ("custom", lambda p: p.send_custom(text("oA"))),
    "mass/sendall": ("mass_all", lambda p: p.send_mass(
        {**text([]), "filter": {"is_to_all": True}}, "all")),
    "mass/send": ("mass_list", lambda p: p.send_mass(text(["oA", "oB"]), "list")),
    "mass/preview": ("mass_all", lambda p: p.preview_mass(text("oA"))),
    "template/send": ("template", lambda p: p.send_template(
        {"touser": "oA", "template_id": "T1", "data": {}})),
    "tags/create": ("tags", lambda p: p.create_tag({"tag": {"name": "周报"}})),
    "tags/get": ("tags", lambda p: p.get_tags()),
    "tags/delete": ("tags", lambda p: p.delete_tag({"tag": {"id": 100}})),
    "tags/members/batchtagging": ("tags", lambda p: p.tag_members(
        {"openid_list": ["oA"], "tagid": 100})),
    "tags/members/batchuntagging": ("tags", lambda p: p.tag_members(
        {"openid_list": ["oA"], "tagid": 100}, add=False)),
    "user/tag/get": ("tags", lambda p: p.tag_page({"tagid": 100})),
    "tags/getidlist": ("tags", lambda p: p.tags_of({"openid": "oA"})),
    "menu/create": ("menu", lambda p: p.create_menu(
        {"button": [{"type": "click", "name": "x", "key": "K"}]})),
    "menu/get": ("menu", lambda p: p.get_menu()),
    "menu/delete": ("menu", lambda p: p.delete_menu()),
}


@pytest.mark.parametrize("kind", privileges.KINDS, ids=lambda k: privileges.describe(*k))
@pytest.mark.parametrize("api", CALLS)
def test_each_kind_of_account_calls_only_what_the_table_allows(platform, kind, api):
    platform.account_type, platform.verified = kind
    follow(platform, "oA", "oB")
    platform.record("oA", "message")
    capability, call = CALLS[api]
    try:
        call(platform)
        code = 0
    except ApiError as exc:
        code = exc.code
        if code == 48001:
            assert exc.message.startswith("api unauthorized: not open to this ")
    assert (code == 48001) == (not privileges.allowed(capability, *kind))


@pytest.mark.parametrize("kind", privileges.KINDS, ids=lambda k: privileges.describe(*k))
def test_token_endpoints_are_open_to_every_account(platform, kind):
    platform.account_type, platform.verified = kind
    platform.check_token(platform.issue_token("client_credential", APPID, SECRET)["access_token"])
    platform.check_token(platform.stable_token("client_credential", APPID, SECRET)["access_token"])


def test_a_personal_account_gets_no_push_api_at_all(platform):
    platform.verified = False
    follow(platform, "oA")
    platform.record("oA", "message")
    assert code_of(platform.send_custom, text("oA")) == 48001
    assert code_of(platform.send_mass, {**text([]), "filter": {"is_to_all": True}}, "all") \
        == 48001
    assert platform.log.since(0) == []


# --- the stable token ----------------------------------------------------------------------------


def stable(platform: Platform, force: bool = False) -> dict[str, Any]:
    return platform.stable_token("client_credential", APPID, SECRET, force_refresh=force)


def test_the_stable_token_stays_the_same_while_it_is_valid(platform, now):
    first = stable(platform)
    assert first["expires_in"] == 7200
    now.advance(1000)
    again = stable(platform)
    assert again == {"access_token": first["access_token"], "expires_in": 6200}
    platform.check_token(first["access_token"])


def test_in_its_last_five_minutes_a_new_stable_token_comes_and_the_old_one_lasts(platform, now):
    old = stable(platform)["access_token"]
    now.advance(7200 - STABLE_RENEW - 1)
    assert stable(platform)["access_token"] == old  # 301 s left
    now.advance(1)
    new = stable(platform)
    assert new["access_token"] != old and new["expires_in"] == 7200
    platform.check_token(old)  # still valid until its own expiry...
    now.advance(STABLE_RENEW)
    assert code_of(platform.check_token, old) == 40001  # ...then gone
    platform.check_token(new["access_token"])


def test_every_stable_answer_lasts_at_least_five_minutes(platform, now):
    for _ in range(40):
        answer = stable(platform)
        assert answer["expires_in"] >= STABLE_RENEW
        platform.check_token(answer["access_token"])
        now.advance(397)


def test_force_refresh_retires_the_previous_stable_token_at_once(platform, now):
    old = stable(platform)["access_token"]
    new = stable(platform, force=True)
    assert new["access_token"] != old and new["expires_in"] == 7200
    assert code_of(platform.check_token, old) == 40001
    platform.check_token(new["access_token"])
    assert stable(platform)["access_token"] == new["access_token"]


def test_a_force_refresh_within_30_seconds_does_not_refresh(platform, now):
    first = stable(platform, force=True)["access_token"]
    now.advance(STABLE_FORCE_GAP - 1)
    assert stable(platform, force=True) == {"access_token": first,
                                            "expires_in": 7200 - STABLE_FORCE_GAP + 1}
    platform.check_token(first)
    now.advance(1)
    assert stable(platform, force=True)["access_token"] != first


def test_force_refresh_is_limited_to_20_a_day(platform, now):
    for _ in range(STABLE_FORCE_PER_DAY):
        stable(platform, force=True)
        now.advance(STABLE_FORCE_GAP)
    assert code_of(stable, platform, True) == 45009
    stable(platform)  # normal mode still answers
    now.advance(24 * 3600)
    stable(platform, force=True)


def test_stable_and_plain_tokens_do_not_disturb_each_other(platform, now):
    plain = platform.issue_token("client_credential", APPID, SECRET)["access_token"]
    kept = stable(platform)["access_token"]
    for _ in range(3):
        platform.issue_token("client_credential", APPID, SECRET)
    now.advance(TOKEN_GRACE + 1)
    platform.check_token(kept)  # new plain tokens leave the stable one alone
    assert code_of(platform.check_token, plain) == 40001
    plain = platform.issue_token("client_credential", APPID, SECRET)["access_token"]
    stable(platform, force=True)
    platform.check_token(plain)  # and a forced stable token leaves the plain one alone
    assert code_of(platform.check_token, kept) == 40001


def test_an_expired_stable_token_is_42001_and_a_call_gives_a_new_one(platform, now):
    old = stable(platform)["access_token"]
    now.advance(7200)
    assert code_of(platform.check_token, old) == 42001
    assert stable(platform)["access_token"] != old


@pytest.mark.parametrize(
    ("grant", "appid", "secret", "code"),
    [("password", APPID, SECRET, 40002), ("client_credential", "wxother", SECRET, 40013),
     ("client_credential", APPID, "wrong", 40125), (None, None, None, 40002)],
)
def test_bad_stable_token_requests(platform, grant, appid, secret, code):
    assert code_of(platform.stable_token, grant, appid, secret) == code


# --- user tags -----------------------------------------------------------------------------------


def create(platform: Platform, name: str) -> int:
    return platform.create_tag({"tag": {"name": name}})["tag"]["id"]


def tag(platform: Platform, tag_id: int, *openids: str, add: bool = True) -> None:
    platform.tag_members({"openid_list": list(openids), "tagid": tag_id}, add=add)


def test_tags_are_created_listed_and_deleted(platform):
    follow(platform, "oA", "oB")
    weekly = create(platform, "周报")
    assert weekly == TAG_FIRST_ID
    daily = create(platform, "daily")
    tag(platform, weekly, "oA", "oB")
    tag(platform, daily, "oA")
    assert platform.get_tags() == {"tags": [{"id": weekly, "name": "周报", "count": 2},
                                            {"id": daily, "name": "daily", "count": 1}]}
    assert platform.tags_of({"openid": "oA"}) == {"tagid_list": [weekly, daily]}
    platform.delete_tag({"tag": {"id": weekly}})
    assert platform.tags_of({"openid": "oA"}) == {"tagid_list": [daily]}
    assert create(platform, "周报") == daily + 1  # ids are not reused
    assert code_of(platform.delete_tag, {"tag": {"id": weekly}}) == 45159
    assert code_of(platform.delete_tag, {"tag": {"id": 2}}) == 45058


@pytest.mark.parametrize(
    ("name", "code"),
    [("", 45157), ("   ", 45157), (None, 45157), ("周报", 45157), ("标" * 11, 45158),
     ("x" * 31, 45158)],
)
def test_tag_names_must_be_new_and_short(platform, name, code):
    create(platform, "周报")
    assert code_of(platform.create_tag, {"tag": {"name": name}}) == code


def test_tag_names_may_take_30_bytes(platform):
    assert create(platform, "标" * 10) and create(platform, "x" * 30)


def test_an_account_has_at_most_100_tags(platform):
    for i in range(TAG_LIMIT):
        create(platform, f"t{i}")
    assert code_of(platform.create_tag, {"tag": {"name": "one more"}}) == 45056


@pytest.mark.parametrize(
    ("body", "code"),
    [({"openid_list": [], "tagid": 100}, 40032),
     ({"openid_list": ["oA"] * (TAG_BATCH + 1), "tagid": 100}, 40032),
     ({"openid_list": "oA", "tagid": 100}, 40032),
     ({"openid_list": ["oA"], "tagid": 101}, 45159),
     ({"openid_list": ["oA"], "tagid": "100"}, 45159),
     ({"openid_list": ["oA", "oNobody"], "tagid": 100}, 40003),
     ({"openid_list": ["oA", "oGone"], "tagid": 100}, 40003)],
)
def test_tagging_refusals_change_nothing(platform, body, code):
    follow(platform, "oA", "oGone")
    platform.record("oGone", "unfollow")
    create(platform, "周报")
    assert code_of(platform.tag_members, body) == code
    assert platform.subscribers["oA"].tags == []


def test_tagging_takes_50_openids_a_call(platform):
    openids = [f"o{i}" for i in range(TAG_BATCH)]
    follow(platform, *openids)
    tag(platform, create(platform, "周报"), *openids)
    assert platform.get_tags()["tags"][0]["count"] == TAG_BATCH


def test_a_user_carries_at_most_20_tags(platform):
    follow(platform, "oA", "oB")
    ids = [create(platform, f"t{i}") for i in range(TAGS_PER_USER + 1)]
    for tag_id in ids[:-1]:
        tag(platform, tag_id, "oA")
    tag(platform, ids[0], "oA")  # tagging again with a tag it has is fine
    assert code_of(platform.tag_members, {"openid_list": ["oB", "oA"], "tagid": ids[-1]}) \
        == 45059
    assert platform.subscribers["oB"].tags == []  # all or nothing
    tag(platform, ids[0], "oA", add=False)
    tag(platform, ids[-1], "oA", "oB")
    assert len(platform.subscribers["oA"].tags) == TAGS_PER_USER


def test_members_are_read_page_by_page(platform, monkeypatch):
    monkeypatch.setattr(tags_module, "TAG_PAGE", 2)
    openids = ["o1", "o2", "o3", "o4", "o5"]
    follow(platform, *openids)
    weekly = create(platform, "周报")
    tag(platform, weekly, *openids)
    seen, after = [], ""
    while True:
        page = platform.tag_page({"tagid": weekly, "next_openid": after})
        assert page["count"] == len(page["data"]["openid"]) <= 2
        if not page["count"]:
            break
        seen += page["data"]["openid"]
        after = page["next_openid"]
    assert seen == openids and after == "o5"
    assert code_of(platform.tag_page, {"tagid": weekly, "next_openid": "oNobody"}) == 40003
    assert code_of(platform.tag_page, {"tagid": 999}) == 45159


def test_unfollowing_keeps_tags_but_leaves_counts_lists_and_sends(platform):
    follow(platform, "oA", "oB")
    weekly = create(platform, "周报")
    tag(platform, weekly, "oA", "oB")
    platform.record("oB", "unfollow")
    assert platform.get_tags()["tags"][0]["count"] == 1
    assert platform.tag_page({"tagid": weekly})["data"]["openid"] == ["oA"]
    assert code_of(platform.tags_of, {"openid": "oB"}) == 40003
    platform.record("oB", "follow")
    assert platform.tags_of({"openid": "oB"}) == {"tagid_list": [weekly]}


def test_tag_apis_have_daily_quotas(platform, now, monkeypatch):
    monkeypatch.setitem(tags_module.TAG_DAILY_QUOTAS, "tags/members", 3)
    follow(platform, "oA")
    weekly = create(platform, "周报")
    for add in (True, False, True):
        tag(platform, weekly, "oA", add=add)
    assert code_of(platform.tag_members, {"openid_list": ["oA"], "tagid": weekly}) == 45009
    platform.get_tags()  # other tag APIs have their own quota
    now.advance(15 * 3600)  # past midnight in Shanghai
    tag(platform, weekly, "oA", add=False)


# --- mass send by tag ----------------------------------------------------------------------------


def by_tag(tag_id: Any, clientmsgid: str = "") -> dict[str, Any]:
    body = {**text([]), "filter": {"is_to_all": False, "tag_id": tag_id}}
    return {**body, "clientmsgid": clientmsgid} if clientmsgid else body


def test_sendall_by_tag_reaches_the_tags_following_unblocked_members_now(platform, events):
    follow(platform, "oA", "oB", "oC", "oD", "oE")
    weekly = create(platform, "周报")
    tag(platform, weekly, "oA", "oB", "oC", "oD")
    platform.record("oC", "block")
    platform.record("oD", "unfollow")
    tag(platform, weekly, "oB", add=False)  # changed before the call: counts
    answer = platform.send_mass(by_tag(weekly, "w1"), "all")
    assert [(e["openid"], e["api"], e["msg_id"]) for e in platform.log.since(0)] == \
        [("oA", "mass", answer["msg_id"])]
    assert events == [{"Event": "MASSSENDJOBFINISH", "MsgID": answer["msg_id"],
                       "Status": "send success", "TotalCount": 2, "FilterCount": 1,
                       "SentCount": 1, "ErrorCount": 0}]


def test_sendall_by_tag_on_a_service_account_skips_those_without_quota(platform):
    platform.account_type = "service"
    follow(platform, "oA", "oB")
    weekly = create(platform, "周报")
    tag(platform, weekly, "oA", "oB")
    for _ in range(4):
        platform.send_mass(text(["oA", "oC"]), "list")
    answer = platform.send_mass(by_tag(weekly), "all")
    assert [e["openid"] for e in platform.log.since(0) if e["msg_id"] == answer["msg_id"]] \
        == ["oB"]


def test_sendall_by_tag_keeps_the_quotas(platform, now):
    follow(platform, "oA")
    weekly = create(platform, "周报")
    tag(platform, weekly, "oA")
    platform.send_mass(by_tag(weekly, "d1"), "all")
    assert code_of(platform.send_mass, by_tag(weekly, "d1"), "all") == 45065
    assert code_of(platform.send_mass, by_tag(weekly, "d2"), "all") == 45028


@pytest.mark.parametrize(("tag_id", "code"), [(999, -1), ("100", 47001), (None, 47001)])
def test_sendall_to_an_unknown_tag(platform, tag_id, code):
    create(platform, "周报")
    assert code_of(platform.send_mass, by_tag(tag_id), "all") == code


# --- passive replies and the log's time ----------------------------------------------------------


def test_passive_replies_go_to_the_delivery_log_with_milliseconds(platform, now):
    platform.record("oA", "follow", "alice")
    now.advance(0.1239)
    entry = platform.show_reply("oA", "", "news", "周报\n本周三篇\nhttps://example.com/a")
    assert entry["time"] == "2026-03-02T09:00:00.123+08:00"
    assert (entry["user"], entry["api"], entry["msgtype"]) == ("alice", "reply", "news")
    assert platform.log.since(0) == [entry]

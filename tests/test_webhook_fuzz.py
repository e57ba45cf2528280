"""Property-based: whatever arrives at /wechat, the answer is never a 5xx."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import clock
from bot.simulator.wire import build_message, signed_request
from bot.wechat.signing import signature
from tests.conftest import WeChat

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

query_values = st.text(alphabet=string.printable + "微信\x00", max_size=80)
queries = st.dictionaries(
    st.sampled_from(
        ["signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature", "echostr",
         "x"]
    ),
    query_values,
    max_size=7,
)

xml_like = st.recursive(
    st.text(max_size=30).map(lambda t: t.replace("<", "&lt;")),
    lambda inner: st.tuples(
        st.sampled_from(["xml", "ToUserName", "MsgType", "Content", "Event", "Encrypt", "a"]),
        st.lists(inner, max_size=3),
    ).map(lambda pair: f"<{pair[0]}>{''.join(pair[1])}</{pair[0]}>"),
    max_leaves=12,
)


@FUZZ
@given(query=queries, body=st.binary(max_size=600))
def test_arbitrary_requests_never_5xx(any_mode: WeChat, query: dict, body: bytes) -> None:
    response = any_mode.client.post("/wechat", query_string=query, data=body)
    assert response.status_code < 500
    get = any_mode.client.get("/wechat", query_string=query)
    assert get.status_code < 500


@FUZZ
@given(body=st.one_of(st.binary(max_size=600), xml_like.map(str.encode)))
def test_signed_garbage_bodies_are_4xx_or_answered(any_mode: WeChat, body: bytes) -> None:
    """Correctly signed queries with arbitrary bodies: refused with 4xx or answered, never 5xx."""
    s = any_mode.settings
    ts, nonce = str(int(clock.now())), "42"
    query = {"signature": signature(s.token, ts, nonce), "timestamp": ts, "nonce": nonce}
    if s.mode != "plain":
        text = body.decode("utf-8", "replace")
        query |= {"encrypt_type": "aes", "msg_signature": signature(s.token, ts, nonce, text)}
    response = any_mode.client.post("/wechat", query_string=query, data=body)
    assert response.status_code < 500


@FUZZ
@given(
    content=st.text(max_size=300),
    kind=st.sampled_from(["text", "voice", "image", "location", "link", "event", "weird"]),
    event=st.text(max_size=20),
    key=st.text(max_size=40),
)
def test_well_formed_messages_with_arbitrary_fields_are_answered(
    any_mode: WeChat, content: str, kind: str, event: str, key: str
) -> None:
    clean = "".join(ch for ch in content if ch.isprintable())
    fields = {"Content": clean, "Recognition": clean, "Label": clean, "Title": clean}
    if kind == "event":
        fields = {"Event": "".join(c for c in event if c.isprintable()) or "x",
                  "EventKey": "".join(c for c in key if c.isprintable())}
    xml = build_message(kind, "oFuzz000000000000000000000", **fields)
    s = any_mode.settings
    signed = signed_request(xml, s.mode, s.token, s.aes_key, s.appid)
    response = any_mode.client.post("/wechat", query_string=signed.query, data=signed.body)
    assert response.status_code in (200, 400), response.get_data(as_text=True)

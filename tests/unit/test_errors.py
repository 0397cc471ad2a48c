"""Error conditions and their wire forms (RFC 6120 §4.9, §6.5, §8.3)."""

from __future__ import annotations

from jaybird import ns
from jaybird.errors import (
    AuthenticationError,
    SASLCondition,
    StanzaError,
    StanzaErrorCondition,
    StanzaErrorType,
    StreamError,
    StreamErrorCondition,
)
from jaybird.xml.element import Element
from jaybird.xml.serializer import serialize


def test_every_stanza_condition_has_a_default_type() -> None:
    assert len(StanzaErrorCondition) == 22  # RFC 6120 §8.3.3 defines 22 conditions
    for condition in StanzaErrorCondition:
        assert isinstance(condition.default_type, StanzaErrorType)
    assert StanzaErrorCondition.FORBIDDEN.default_type is StanzaErrorType.AUTH
    assert StanzaErrorCondition.RESOURCE_CONSTRAINT.default_type is StanzaErrorType.WAIT


def test_stream_conditions_complete() -> None:
    assert len(StreamErrorCondition) == 25  # RFC 6120 §4.9.3.1 - §4.9.3.25
    assert len(SASLCondition) == 11  # RFC 6120 §6.5.1 - §6.5.11


def test_stanza_error_round_trip_with_text_and_app_condition() -> None:
    app = Element("{urn:example:app}too-many")
    err = StanzaError(StanzaErrorCondition.POLICY_VIOLATION, "slow down", app_condition=app, lang="en", by="x.example")
    back = StanzaError.from_element(err.to_element())
    assert back.condition is StanzaErrorCondition.POLICY_VIOLATION
    assert back.text == "slow down" and back.lang == "en" and back.by == "x.example"
    assert back.app_condition == app and back.type is StanzaErrorType.MODIFY


def test_gone_carries_new_address() -> None:
    # RFC 6120 §8.3.3.5: <gone/> may hold the new address.
    err = StanzaError(StanzaErrorCondition.GONE, redirect="xmpp:romeo@afterlife.example")
    assert StanzaError.from_element(err.to_element()).redirect == "xmpp:romeo@afterlife.example"


def test_unknown_stanza_condition_reads_undefined() -> None:
    el = Element(ns.clark(ns.CLIENT, "error"), {"type": "cancel"})
    el.add(ns.clark(ns.STANZAS, "made-up"))
    assert StanzaError.from_element(el).condition is StanzaErrorCondition.UNDEFINED_CONDITION


def test_stream_error_wire_form_and_see_other_host() -> None:
    # RFC 6120 §4.9.3.19
    err = StreamError(StreamErrorCondition.SEE_OTHER_HOST, other_host="[2001:db8::1]:5222")
    text = serialize(err.to_element(), default_ns=ns.CLIENT, prefixes={ns.STREAM: "stream"})
    assert text == (
        '<stream:error><see-other-host xmlns="urn:ietf:params:xml:ns:xmpp-streams">[2001:db8::1]:5222'
        "</see-other-host></stream:error>"
    )
    back = StreamError.from_element(err.to_element())
    assert back.condition is StreamErrorCondition.SEE_OTHER_HOST and back.other_host == "[2001:db8::1]:5222"


def test_sasl_failure_round_trip() -> None:
    err = AuthenticationError(SASLCondition.ACCOUNT_DISABLED, "call us")
    text = serialize(err.to_element())
    assert text == (
        '<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><account-disabled/><text>call us</text></failure>'
    )
    back = AuthenticationError.from_element(err.to_element())
    assert back.condition is SASLCondition.ACCOUNT_DISABLED and back.text == "call us"

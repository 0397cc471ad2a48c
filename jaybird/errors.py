"""Errors: the conditions of RFC 6120 as enums, and the exceptions that carry them.

Two families, by whose fault it is (the h11 rule):

* :class:`LocalProtocolError`: this side misused the API (sent a stanza before the stream was ready, ...).
* :class:`RemoteProtocolError`: the peer misbehaved; it carries the :class:`StreamError` to send back.

:class:`StanzaError` is raised by handlers and becomes an error reply on the wire; :class:`StreamError` closes
a stream with its condition; :class:`AuthenticationError` reports a SASL ``<failure/>``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from jaybird import ns
from jaybird.xml.element import XML_LANG, Element

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "JaybirdError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SASLCondition",
    "StanzaError",
    "StanzaErrorCondition",
    "StanzaErrorType",
    "StreamError",
    "StreamErrorCondition",
]


class StanzaErrorType(enum.Enum):
    """RFC 6120 §8.3.2: what the sender should do next."""

    AUTH = "auth"
    CANCEL = "cancel"
    CONTINUE = "continue"
    MODIFY = "modify"
    WAIT = "wait"


class StanzaErrorCondition(enum.Enum):
    """RFC 6120 §8.3.3 defined stanza error conditions."""

    BAD_REQUEST = "bad-request"
    CONFLICT = "conflict"
    FEATURE_NOT_IMPLEMENTED = "feature-not-implemented"
    FORBIDDEN = "forbidden"
    GONE = "gone"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    ITEM_NOT_FOUND = "item-not-found"
    JID_MALFORMED = "jid-malformed"
    NOT_ACCEPTABLE = "not-acceptable"
    NOT_ALLOWED = "not-allowed"
    NOT_AUTHORIZED = "not-authorized"
    POLICY_VIOLATION = "policy-violation"
    RECIPIENT_UNAVAILABLE = "recipient-unavailable"
    REDIRECT = "redirect"
    REGISTRATION_REQUIRED = "registration-required"
    REMOTE_SERVER_NOT_FOUND = "remote-server-not-found"
    REMOTE_SERVER_TIMEOUT = "remote-server-timeout"
    RESOURCE_CONSTRAINT = "resource-constraint"
    SERVICE_UNAVAILABLE = "service-unavailable"
    SUBSCRIPTION_REQUIRED = "subscription-required"
    UNDEFINED_CONDITION = "undefined-condition"
    UNEXPECTED_REQUEST = "unexpected-request"

    @property
    def default_type(self) -> StanzaErrorType:
        """The error type RFC 6120 §8.3.3 gives as usual for this condition."""
        return _DEFAULT_TYPES[self]


_C = StanzaErrorCondition
_T = StanzaErrorType
_DEFAULT_TYPES: dict[StanzaErrorCondition, StanzaErrorType] = {
    _C.BAD_REQUEST: _T.MODIFY,
    _C.CONFLICT: _T.CANCEL,
    _C.FEATURE_NOT_IMPLEMENTED: _T.CANCEL,
    _C.FORBIDDEN: _T.AUTH,
    _C.GONE: _T.CANCEL,
    _C.INTERNAL_SERVER_ERROR: _T.CANCEL,
    _C.ITEM_NOT_FOUND: _T.CANCEL,
    _C.JID_MALFORMED: _T.MODIFY,
    _C.NOT_ACCEPTABLE: _T.MODIFY,
    _C.NOT_ALLOWED: _T.CANCEL,
    _C.NOT_AUTHORIZED: _T.AUTH,
    _C.POLICY_VIOLATION: _T.MODIFY,
    _C.RECIPIENT_UNAVAILABLE: _T.WAIT,
    _C.REDIRECT: _T.MODIFY,
    _C.REGISTRATION_REQUIRED: _T.AUTH,
    _C.REMOTE_SERVER_NOT_FOUND: _T.CANCEL,
    _C.REMOTE_SERVER_TIMEOUT: _T.WAIT,
    _C.RESOURCE_CONSTRAINT: _T.WAIT,
    _C.SERVICE_UNAVAILABLE: _T.CANCEL,
    _C.SUBSCRIPTION_REQUIRED: _T.AUTH,
    _C.UNDEFINED_CONDITION: _T.CANCEL,
    _C.UNEXPECTED_REQUEST: _T.WAIT,
}


class StreamErrorCondition(enum.Enum):
    """RFC 6120 §4.9.3 defined stream error conditions."""

    BAD_FORMAT = "bad-format"
    BAD_NAMESPACE_PREFIX = "bad-namespace-prefix"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_GONE = "host-gone"
    HOST_UNKNOWN = "host-unknown"
    IMPROPER_ADDRESSING = "improper-addressing"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"


class SASLCondition(enum.Enum):
    """RFC 6120 §6.5 SASL failure conditions."""

    ABORTED = "aborted"
    ACCOUNT_DISABLED = "account-disabled"
    CREDENTIALS_EXPIRED = "credentials-expired"
    ENCRYPTION_REQUIRED = "encryption-required"
    INCORRECT_ENCODING = "incorrect-encoding"
    INVALID_AUTHZID = "invalid-authzid"
    INVALID_MECHANISM = "invalid-mechanism"
    MALFORMED_REQUEST = "malformed-request"
    MECHANISM_TOO_WEAK = "mechanism-too-weak"
    NOT_AUTHORIZED = "not-authorized"
    TEMPORARY_AUTH_FAILURE = "temporary-auth-failure"


class JaybirdError(Exception):
    """Base class of every error jaybird raises on purpose."""


def _text_element(namespace: str, text: str, lang: str | None) -> Element:
    el = Element(ns.clark(namespace, "text"), text=text)
    if lang:
        el.attrs[XML_LANG] = lang
    return el


C = TypeVar("C", StanzaErrorCondition, StreamErrorCondition)


@dataclass(frozen=True, slots=True)
class _Parts(Generic[C]):
    condition: C
    text: str | None
    lang: str | None
    app: Element | None
    #: The condition element's text: the new address of ``gone``/``redirect``, the host of ``see-other-host``.
    value: str | None


def _read_error(error: Element, namespace: str, conditions: type[C], undefined: C) -> _Parts[C]:
    """The parts of a stanza or stream ``<error/>`` (RFC 6120 §4.9.2, §8.3.2): the first defined condition,
    ``<text/>``, the first application-specific child; an unknown condition reads as ``undefined``."""
    condition, text, lang, app, value = undefined, None, None, None, None
    seen_condition = False
    for child in error.elements():
        child_ns, local = ns.split(child.name)
        if child_ns != namespace:
            app = child if app is None else app
        elif local == "text":
            text, lang = child.text, child.lang
        elif not seen_condition:
            seen_condition = True
            try:
                condition = conditions(local)
            except ValueError:
                condition = undefined
            value = child.text or None
    return _Parts(condition, text, lang, app, value)


@dataclass(eq=False)
class StanzaError(JaybirdError):
    """A stanza error (RFC 6120 §8.3). Raise it in a handler and the peer gets the error reply."""

    condition: StanzaErrorCondition
    text: str | None = None
    type: StanzaErrorType | None = None
    app_condition: Element | None = None
    lang: str | None = None
    by: str | None = None
    #: For ``gone`` and ``redirect``: the alternate address (RFC 6120 §8.3.3.5, §8.3.3.14).
    redirect: str | None = None

    def __post_init__(self) -> None:
        if self.type is None:
            self.type = self.condition.default_type
        super().__init__(self.condition.value + (f": {self.text}" if self.text else ""))

    @property
    def error_type(self) -> StanzaErrorType:
        assert self.type is not None
        return self.type

    def to_element(self) -> Element:
        """The ``<error/>`` child (in ``jabber:client``; the serializer writes the stream's namespace)."""
        attrs = {"type": self.error_type.value}
        if self.by:
            attrs["by"] = self.by
        el = Element(ns.clark(ns.CLIENT, "error"), attrs)
        el.append(Element(ns.clark(ns.STANZAS, self.condition.value), text=self.redirect))
        if self.text:
            el.append(_text_element(ns.STANZAS, self.text, self.lang))
        if self.app_condition is not None:
            el.append(self.app_condition)
        return el

    @classmethod
    def from_element(cls, error: Element) -> StanzaError:
        """Read an ``<error/>`` child; unknown or missing conditions read as ``undefined-condition``."""
        parts = _read_error(error, ns.STANZAS, StanzaErrorCondition, StanzaErrorCondition.UNDEFINED_CONDITION)
        try:
            etype: StanzaErrorType | None = StanzaErrorType(error.get("type", ""))
        except ValueError:
            etype = None
        return cls(
            parts.condition,
            text=parts.text,
            type=etype,
            app_condition=parts.app,
            lang=parts.lang,
            by=error.get("by"),
            redirect=parts.value,
        )


@dataclass(eq=False)
class StreamError(JaybirdError):
    """A stream error (RFC 6120 §4.9): unrecoverable, the stream is closed after it."""

    condition: StreamErrorCondition
    text: str | None = None
    app_condition: Element | None = None
    lang: str | None = None
    #: For ``see-other-host``: the host (and optional port) to reconnect to (RFC 6120 §4.9.3.19).
    other_host: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.condition.value + (f": {self.text}" if self.text else ""))

    def to_element(self) -> Element:
        el = Element(ns.clark(ns.STREAM, "error"))
        el.append(Element(ns.clark(ns.STREAMS, self.condition.value), text=self.other_host))
        if self.text:
            el.append(_text_element(ns.STREAMS, self.text, self.lang))
        if self.app_condition is not None:
            el.append(self.app_condition)
        return el

    @classmethod
    def from_element(cls, error: Element) -> StreamError:
        parts = _read_error(error, ns.STREAMS, StreamErrorCondition, StreamErrorCondition.UNDEFINED_CONDITION)
        return cls(parts.condition, text=parts.text, app_condition=parts.app, lang=parts.lang, other_host=parts.value)


@dataclass(eq=False)
class AuthenticationError(JaybirdError):
    """SASL authentication failed (RFC 6120 §6.5), on either side."""

    condition: SASLCondition
    text: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.condition.value + (f": {self.text}" if self.text else ""))

    def to_element(self) -> Element:
        el = Element(ns.clark(ns.SASL, "failure"))
        el.append(Element(ns.clark(ns.SASL, self.condition.value)))
        if self.text:
            el.append(_text_element(ns.SASL, self.text, None))
        return el

    @classmethod
    def from_element(cls, failure: Element) -> AuthenticationError:
        condition = SASLCondition.NOT_AUTHORIZED
        text = None
        for child in failure.elements():
            local = child.local
            if local == "text":
                text = child.text
            else:
                try:
                    condition = SASLCondition(local)
                except ValueError:
                    condition = SASLCondition.NOT_AUTHORIZED
        return cls(condition, text)


class ConfigError(JaybirdError):
    """A configuration value is unknown or invalid: ``source`` names the file, ``key`` the dotted path."""

    def __init__(self, source: str, key: str | None, reason: str, *, line: int | None = None) -> None:
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason
        self.line = line


class LocalProtocolError(JaybirdError):
    """This side asked for something the protocol state does not allow (a bug in the caller)."""


class RemoteProtocolError(JaybirdError):
    """The peer broke the protocol. ``error`` is the stream error to send before closing."""

    def __init__(self, error: StreamError) -> None:
        super().__init__(str(error))
        self.error = error

    @classmethod
    def of(cls, condition: StreamErrorCondition, text: str | None = None) -> RemoteProtocolError:
        return cls(StreamError(condition, text))

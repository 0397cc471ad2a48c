"""JIDs: XMPP addresses (RFC 7622), parsed and prepared once.

A :class:`JID` holds the prepared (canonical) form of its three parts, so equality and hashing are plain
string operations on the hot path. Preparation uses maintained libraries: ``precis-i18n`` for the PRECIS
profiles of the localpart (UsernameCaseMapped) and resourcepart (OpaqueString), ``idna`` (IDNA2008 with
UTS #46 mapping) for the domainpart. Only what is XMPP itself is written here: the splitting rules, the
characters RFC 7622 excludes from localparts, IP literals, the size limits, and XEP-0106 escaping.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from typing import Any, Final, NoReturn, final

import idna
import precis_i18n

from jaybird.errors import JaybirdError

__all__ = [
    "JID",
    "MAX_PART_BYTES",
    "JIDError",
    "JIDPart",
    "escape_local",
    "prepare_domainpart",
    "prepare_localpart",
    "prepare_resourcepart",
    "unescape_local",
    "username_case_mapped",
]

#: RFC 7622 §3.1: each part is at most 1023 octets (UTF-8, prepared form).
MAX_PART_BYTES: Final = 1023
# Preparation never shrinks a part by more than 4 code points to 1 (NFC composes at most a 4-code-point
# canonical decomposition; the width and case mappings are one-to-one or grow), so a longer raw part can never
# fit in MAX_PART_BYTES: reject it before paying for preparation.
_MAX_RAW_CHARS: Final = 4 * MAX_PART_BYTES
# Only typical-sized addresses go through the cache, so a flood of long distinct JIDs cannot pin megabytes.
_MAX_CACHED_CHARS: Final = 512
_CACHE_SIZE: Final = 4096

_USERNAME: Final = precis_i18n.get_profile("UsernameCaseMapped")
_OPAQUE: Final = precis_i18n.get_profile("OpaqueString")
# RFC 7622 §3.3.1: allowed by the PRECIS IdentifierClass but excluded from localparts.
_LOCAL_EXCLUDED_RE: Final = re.compile("[\"&'/:<>@]")
_ALL_DIGITS_RE: Final = re.compile(r"[0-9]+(?:\.[0-9]+)*")
# Printable ASCII, the common case: both PRECIS profiles leave it as it is (UsernameCaseMapped lowercases it and
# refuses the space), so the full preparation, a per-character table walk, is only needed beyond it.
_ASCII_ID_RE: Final = re.compile("[\x21-\x7e]+")
_ASCII_TEXT_RE: Final = re.compile("[\x20-\x7e]+")


class JIDPart(enum.StrEnum):
    """The three parts of a JID, named as RFC 7622 names them."""

    LOCAL = "localpart"
    DOMAIN = "domainpart"
    RESOURCE = "resourcepart"


class JIDError(JaybirdError, ValueError):
    """An address that RFC 7622 does not allow; ``part`` names the offending part, ``reason`` says why."""

    def __init__(self, part: JIDPart, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


def _precis_error(part: JIDPart, exc: UnicodeEncodeError) -> NoReturn:
    kind = exc.reason.partition("/")[2] or exc.reason
    if kind == "empty":
        raise JIDError(part, "is empty") from None
    if exc.end - exc.start == 1 and kind != "bidi_rule":
        char = exc.object[exc.start]
        detail = kind.replace("_", " ")
        raise JIDError(part, f"contains a disallowed character {char!r} (U+{ord(char):04X}, {detail})") from None
    raise JIDError(part, f"violates the PRECIS {exc.encoding} profile ({kind.replace('_', ' ')})") from None


def _check_size(part: JIDPart, prepared: str) -> str:
    # surrogates never get here: both PRECIS and IDNA reject them, so encode() cannot fail
    if len(prepared) > MAX_PART_BYTES // 4 and len(prepared.encode()) > MAX_PART_BYTES:
        raise JIDError(part, f"is longer than {MAX_PART_BYTES} bytes")
    return prepared


def _check_raw(part: JIDPart, raw: str) -> None:
    if not raw:
        raise JIDError(part, "is empty")
    if len(raw) > _MAX_RAW_CHARS:
        raise JIDError(part, f"is longer than {MAX_PART_BYTES} bytes")


def username_case_mapped(raw: str) -> str:
    """The PRECIS ``UsernameCaseMapped`` profile (RFC 8265 §3.3); raises UnicodeEncodeError for a refused string."""
    if _ASCII_ID_RE.fullmatch(raw):
        return raw.lower()
    return str(_USERNAME.enforce(raw))


def prepare_localpart(raw: str) -> str:
    """RFC 7622 §3.3: UsernameCaseMapped, then the excluded characters. Raises :class:`JIDError`."""
    _check_raw(JIDPart.LOCAL, raw)
    try:
        prepared = username_case_mapped(raw)
    except UnicodeEncodeError as exc:
        _precis_error(JIDPart.LOCAL, exc)
    # checked after preparation: width mapping turns e.g. U+FF20 FULLWIDTH COMMERCIAL AT into '@'
    bad = _LOCAL_EXCLUDED_RE.search(prepared)
    if bad is not None:
        raise JIDError(JIDPart.LOCAL, f"contains a disallowed character {bad.group()!r}")
    return _check_size(JIDPart.LOCAL, prepared)


def prepare_resourcepart(raw: str) -> str:
    """RFC 7622 §3.4: the OpaqueString profile. Raises :class:`JIDError`."""
    _check_raw(JIDPart.RESOURCE, raw)
    if _ASCII_TEXT_RE.fullmatch(raw):
        return _check_size(JIDPart.RESOURCE, raw)
    try:
        prepared: str = _OPAQUE.enforce(raw)
    except UnicodeEncodeError as exc:
        _precis_error(JIDPart.RESOURCE, exc)
    return _check_size(JIDPart.RESOURCE, prepared)


def _prepare_ip_literal(raw: str) -> str:
    inner = raw[1:-1] if raw.endswith("]") else ""
    # RFC 3986 IP-literal has no zone identifier; ipaddress would accept one
    if not inner or "%" in inner:
        raise JIDError(JIDPart.DOMAIN, f"{raw!r} is not a valid IPv6 literal")
    try:
        address = ipaddress.IPv6Address(inner)
    except ValueError:
        raise JIDError(JIDPart.DOMAIN, f"{raw!r} is not a valid IPv6 literal") from None
    return f"[{address.compressed}]"


# Few distinct domains carry most traffic, so this small cache serves even the full JIDs the main one misses.
@functools.lru_cache(maxsize=1024)
def prepare_domainpart(raw: str) -> str:
    """RFC 7622 §3.2: an IP literal, or a domain name in canonical U-label form. Raises :class:`JIDError`."""
    _check_raw(JIDPart.DOMAIN, raw)
    if raw.startswith("["):
        return _prepare_ip_literal(raw)
    try:
        # UTS #46 mapping lowercases, applies NFC and maps the ideographic full stops to '.'
        mapped = idna.uts46_remap(raw, std3_rules=True)
    except (idna.IDNAError, UnicodeError) as exc:
        raise JIDError(JIDPart.DOMAIN, f"is not a valid domain name ({exc})") from None
    # RFC 7622 §3.2: one final label separator is not part of the canonical form
    if mapped.endswith("."):
        mapped = mapped[:-1]
    if not mapped:
        raise JIDError(JIDPart.DOMAIN, "is empty")
    if mapped.endswith("."):
        # idna would take a second final dot for the root label and keep it
        raise JIDError(JIDPart.DOMAIN, "ends with an empty label")
    if _ALL_DIGITS_RE.fullmatch(mapped):
        # no top-level domain is all digits (RFC 3696 §2), so this can only mean an IPv4 address
        try:
            return str(ipaddress.IPv4Address(mapped))
        except ValueError:
            raise JIDError(JIDPart.DOMAIN, f"{raw!r} is not a valid IPv4 address") from None
    try:
        # encoding checks every label (and the DNS length limits); decoding gives the U-label canonical form
        # RFC 7622 §3.2.1 asks for, turning A-label input into the same value as U-label input
        prepared = idna.decode(idna.encode(mapped, strict=True), strict=True)
    except (idna.IDNAError, UnicodeError) as exc:
        raise JIDError(JIDPart.DOMAIN, f"is not a valid domain name ({exc})") from None
    return _check_size(JIDPart.DOMAIN, prepared)


def _split_and_prepare(text: str) -> tuple[str | None, str, str | None]:
    # RFC 7622 §3.1: the resourcepart is everything after the first '/', so it may hold '@' and '/';
    # the localpart is everything before the first '@' of what remains.
    rest, slash, raw_resource = text.partition("/")
    raw_local, at, raw_domain = rest.partition("@")
    local = prepare_localpart(raw_local) if at else None
    domain = prepare_domainpart(raw_domain if at else rest)
    resource = prepare_resourcepart(raw_resource) if slash else None
    return local, domain, resource


_split_and_prepare_cached: Final = functools.lru_cache(maxsize=_CACHE_SIZE)(_split_and_prepare)


_ESCAPES: Final = {
    " ": "\\20",
    '"': "\\22",
    "&": "\\26",
    "'": "\\27",
    "/": "\\2f",
    ":": "\\3a",
    "<": "\\3c",
    ">": "\\3e",
    "@": "\\40",
}
_UNESCAPES: Final = {escaped: char for char, escaped in _ESCAPES.items()} | {"\\5c": "\\"}
_SEQUENCE: Final = "(?:20|22|26|27|2f|3a|3c|3e|40|5c)"  # lowercase only: XEP-0106 §3.1, case is significant
# A backslash is escaped only where it starts something that would otherwise unescape (XEP-0106 §4.1 rule 7,
# §4.3): "foo\bar" stays as it is.
_ESCAPE_RE: Final = re.compile(f"[ \"&'/:<>@]|\\\\(?={_SEQUENCE})")
_UNESCAPE_RE: Final = re.compile(f"\\\\{_SEQUENCE}")


def escape_local(text: str) -> str:
    """XEP-0106: escape a user-supplied localpart (``d'artagnan`` -> ``d\\27artagnan``).

    Raises :class:`JIDError` for a leading or trailing space, which XEP-0106 §4.1 rule 6 forbids as ``\\20``.
    """
    if text.startswith(" ") or text.endswith(" "):
        raise JIDError(JIDPart.LOCAL, "cannot start or end with a space")
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(), "\\5c"), text)


def unescape_local(text: str) -> str:
    """XEP-0106: the display form of an escaped localpart; anything but the ten sequences is left alone."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES[m.group()], text)


_set: Final = object.__setattr__


@final
class JID:
    """An XMPP address, immutable and hashable; equal JIDs have the same prepared (canonical) form.

    ``JID("Juliet@Example.com/Balcony")`` parses and prepares (raising :class:`JIDError`);
    :meth:`from_parts` builds one from separate, unescaped parts.
    """

    __slots__ = ("_domain", "_local", "_resource", "_str")
    _local: str | None
    _domain: str
    _resource: str | None
    _str: str

    def __init__(self, jid: str) -> None:
        if not isinstance(jid, str):
            raise TypeError(f"JID() takes a str, not {type(jid).__name__}")
        parse = _split_and_prepare_cached if len(jid) <= _MAX_CACHED_CHARS else _split_and_prepare
        self._init(*parse(jid))

    def _init(self, local: str | None, domain: str, resource: str | None) -> None:
        text = domain if local is None else f"{local}@{domain}"
        _set(self, "_local", local)
        _set(self, "_domain", domain)
        _set(self, "_resource", resource)
        _set(self, "_str", text if resource is None else f"{text}/{resource}")

    @classmethod
    def _prepared(cls, local: str | None, domain: str, resource: str | None) -> JID:
        jid = cls.__new__(cls)
        jid._init(local, domain, resource)
        return jid

    @classmethod
    def from_parts(cls, local: str | None, domain: str, resource: str | None = None, *, escape: bool = False) -> JID:
        """Build a JID from its parts; with ``escape=True`` the localpart is XEP-0106-escaped first."""
        if local is not None and escape:
            local = escape_local(local)
        return cls._prepared(
            None if local is None else prepare_localpart(local),
            prepare_domainpart(domain),
            None if resource is None else prepare_resourcepart(resource),
        )

    @property
    def local(self) -> str | None:
        return self._local

    @property
    def domain(self) -> str:
        return self._domain

    @property
    def resource(self) -> str | None:
        return self._resource

    @property
    def bare(self) -> JID:
        """This JID without its resourcepart (itself when it has none)."""
        if self._resource is None:
            return self
        return JID._prepared(self._local, self._domain, None)

    @property
    def is_bare(self) -> bool:
        return self._resource is None

    @property
    def is_full(self) -> bool:
        return self._resource is not None

    @property
    def is_domain(self) -> bool:
        """A server or component address: no localpart, no resourcepart."""
        return self._local is None and self._resource is None

    def with_resource(self, resource: str | None) -> JID:
        """This JID with another resourcepart (prepared here), or none for ``None``."""
        if resource is None:
            return self.bare
        return JID._prepared(self._local, self._domain, prepare_resourcepart(resource))

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"JID({self._str!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JID):
            return self._str == other._str
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._str)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"JID is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"JID is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[type[JID], tuple[str]]:
        return JID, (self._str,)

    def __copy__(self) -> JID:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> JID:
        return self

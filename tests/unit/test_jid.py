"""JID parsing and preparation (RFC 7622) and JID escaping (XEP-0106)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaybird import jid as jid_module
from jaybird.errors import JaybirdError
from jaybird.jid import (
    JID,
    MAX_PART_BYTES,
    JIDError,
    JIDPart,
    escape_local,
    prepare_domainpart,
    prepare_localpart,
    prepare_resourcepart,
    unescape_local,
)

# --- RFC 7622 §3.5 examples -------------------------------------------------------------------------------

# (input, localpart, domainpart, resourcepart) after preparation
RFC_7622_VALID = [
    ("juliet@example.com", "juliet", "example.com", None),
    ("juliet@example.com/foo", "juliet", "example.com", "foo"),
    ("juliet@example.com/foo bar", "juliet", "example.com", "foo bar"),
    ("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"),
    ("foo\\20bar@example.com", "foo\\20bar", "example.com", None),
    ("fussball@example.com", "fussball", "example.com", None),
    ("fu\u00dfball@example.com", "fu\u00dfball", "example.com", None),
    ("\u03c0@example.com", "\u03c0", "example.com", None),
    ("\u03a3@example.com/foo", "\u03c3", "example.com", "foo"),
    ("\u03c3@example.com/foo", "\u03c3", "example.com", "foo"),
    ("\u03c2@example.com/foo", "\u03c2", "example.com", "foo"),
    ("king@example.com/\u265a", "king", "example.com", "\u265a"),
    ("example.com", None, "example.com", None),
    ("example.com/foobar", None, "example.com", "foobar"),
    ("a.example.com/b@example.net", None, "a.example.com", "b@example.net"),
    # erratum 4560 withdrew the "leading space in resourcepart" invalid example: OpaqueString allows it
    ("juliet@example.com/ foo", "juliet", "example.com", " foo"),
]

# (input, part named by the error)
RFC_7622_INVALID = [
    ('"juliet"@example.com', JIDPart.LOCAL),  # §3.3.1 excluded character
    ("foo bar@example.com", JIDPart.LOCAL),  # space: not in the IdentifierClass
    ("@example.com/", JIDPart.LOCAL),  # empty localpart
    ("henry\u2163@example.com", JIDPart.LOCAL),  # ROMAN NUMERAL FOUR has a compatibility decomposition
    ("\u265a@example.com", JIDPart.LOCAL),  # symbol
    ("juliet@", JIDPart.DOMAIN),  # empty domainpart
    ("/foobar", JIDPart.DOMAIN),  # empty domainpart
]


@pytest.mark.parametrize(("text", "local", "domain", "resource"), RFC_7622_VALID)
def test_rfc7622_valid_examples(text: str, local: str | None, domain: str, resource: str | None) -> None:
    j = JID(text)
    assert (j.local, j.domain, j.resource) == (local, domain, resource)


@pytest.mark.parametrize(("text", "part"), RFC_7622_INVALID)
def test_rfc7622_invalid_examples(text: str, part: JIDPart) -> None:
    with pytest.raises(JIDError) as info:
        JID(text)
    assert info.value.part == part


def test_final_sigma_is_not_folded_into_sigma() -> None:
    # RFC 7622 §3.5: capital sigma lowercases to small sigma; final sigma stays a different localpart
    assert JID("\u03a3@example.com") == JID("\u03c3@example.com")
    assert JID("\u03c2@example.com") != JID("\u03c3@example.com")
    assert JID("fussball@example.com") != JID("fu\u00dfball@example.com")


# --- splitting (RFC 7622 §3.1) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "local", "domain", "resource"),
    [
        ("a@b.example/c/d@e", "a", "b.example", "c/d@e"),
        ("b.example/c@d", None, "b.example", "c@d"),
        ("a@b.example/@", "a", "b.example", "@"),
        ("a@b.example//", "a", "b.example", "/"),
    ],
)
def test_resource_is_everything_after_the_first_slash(
    text: str, local: str | None, domain: str, resource: str | None
) -> None:
    j = JID(text)
    assert (j.local, j.domain, j.resource) == (local, domain, resource)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("@example.com", JIDPart.LOCAL),
        ("example.com/", JIDPart.RESOURCE),
        ("a@", JIDPart.DOMAIN),
        ("a@/r", JIDPart.DOMAIN),
        ("", JIDPart.DOMAIN),
        ("a@example.com/", JIDPart.RESOURCE),
        ("a@b@example.com", JIDPart.DOMAIN),  # the second '@' lands in the domainpart
    ],
)
def test_empty_or_misplaced_parts_are_errors(text: str, part: JIDPart) -> None:
    with pytest.raises(JIDError) as info:
        JID(text)
    assert info.value.part == part


# --- localpart (RFC 7622 §3.3) ----------------------------------------------------------------------------


def test_localpart_is_case_mapped_but_resourcepart_is_not() -> None:
    assert JID("Juliet@Example.com") == JID("juliet@example.com")
    assert str(JID("Juliet@Example.com/Balcony")) == "juliet@example.com/Balcony"
    assert JID("juliet@example.com/Balcony") != JID("juliet@example.com/balcony")


def test_localpart_width_mapping() -> None:
    # RFC 8265 §3.3.1 (UsernameCaseMapped) maps fullwidth forms to their narrow equivalents
    assert JID("\uff2a\uff55\uff4c\uff49\uff45\uff54@example.com").local == "juliet"


@pytest.mark.parametrize("char", ['"', "&", "'", "/", ":", "<", ">", "@"])
def test_localpart_excluded_characters(char: str) -> None:
    # RFC 7622 §3.3.1; '/' and '@' can only reach the localpart through from_parts
    with pytest.raises(JIDError) as info:
        JID.from_parts(f"a{char}b", "example.com")
    assert info.value.part == JIDPart.LOCAL
    assert str(info.value) == f"localpart: contains a disallowed character {char!r}"


def test_excluded_character_is_caught_after_width_mapping() -> None:
    # U+FF07 FULLWIDTH APOSTROPHE becomes "'" during preparation, which the localpart excludes
    with pytest.raises(JIDError, match='disallowed character "\'"'):
        JID("d\uff07artagnan@example.com")


def test_error_message_names_the_part_and_the_reason() -> None:
    with pytest.raises(JIDError) as info:
        JID('"juliet"@example.com')
    assert str(info.value) == "localpart: contains a disallowed character '\"'"
    assert info.value.reason == "contains a disallowed character '\"'"
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, JaybirdError)
    with pytest.raises(JIDError, match=r"^localpart: contains a disallowed character ' ' \(U\+0020"):
        JID("foo bar@example.com")
    with pytest.raises(JIDError, match=r"^resourcepart: is empty$"):
        JID("a@example.com/")
    with pytest.raises(JIDError, match=r"^domainpart: is not a valid domain name"):
        JID("a@exa_mple.com")


@pytest.mark.parametrize(
    "text",
    [
        "a\u0000b@example.com",  # control character
        "a\u200db@example.com",  # ZERO WIDTH JOINER outside its context rule
        "\u05d0a@example.com",  # RTL and LTR mixed: the bidi rule
        "\ud800@example.com",  # lone surrogate
    ],
)
def test_localpart_precis_violations(text: str) -> None:
    with pytest.raises(JIDError) as info:
        JID(text)
    assert info.value.part == JIDPart.LOCAL


# --- resourcepart (RFC 7622 §3.4) -------------------------------------------------------------------------


def test_resourcepart_keeps_case_and_spaces_and_maps_wide_spaces() -> None:
    assert JID("a@example.com/ Balcony Scene ").resource == " Balcony Scene "
    # OpaqueString (RFC 8265 §4.2) maps non-ASCII spaces to U+0020
    assert JID("a@example.com/a\u3000b").resource == "a b"
    # and normalizes to NFC
    assert JID("a@example.com/e\u0301").resource == "\u00e9"


@pytest.mark.parametrize("text", ["a@example.com/a\u0000b", "a@example.com/\u0007", "a@example.com/\udfff"])
def test_resourcepart_precis_violations(text: str) -> None:
    with pytest.raises(JIDError) as info:
        JID(text)
    assert info.value.part == JIDPart.RESOURCE


# --- domainpart (RFC 7622 §3.2) ---------------------------------------------------------------------------


def test_idn_domain_a_label_equals_u_label() -> None:
    # RFC 7622 §3.2.1: the canonical form of a domainpart is made of U-labels
    u = JID("juliet@\u4f8b\u3048.\u30c6\u30b9\u30c8")
    a = JID("juliet@xn--r8jz45g.xn--zckzah")
    assert u == a
    assert hash(u) == hash(a)
    assert a.domain == "\u4f8b\u3048.\u30c6\u30b9\u30c8"
    assert JID("XN--R8JZ45G.XN--ZCKZAH") == JID("\u4f8b\u3048.\u30c6\u30b9\u30c8")


def test_domain_is_lowercased_and_loses_one_trailing_dot() -> None:
    # RFC 7622 §3.2: the final label separator is stripped before comparison
    assert JID("Juliet@EXAMPLE.com.") == JID("juliet@example.com")
    assert str(JID("example.com./r")) == "example.com/r"
    assert JID("example.com\u3002") == JID("example.com")  # IDEOGRAPHIC FULL STOP is a label separator
    assert JID("\u00c4.example") == JID("\u00e4.example")
    # UTS #46 maps compatibility characters too: ROMAN NUMERAL FOUR becomes "iv"
    assert JID("\u2163.example").domain == "iv.example"


@pytest.mark.parametrize(
    "text",
    [
        "example.com..",  # only one trailing dot is stripped
        ".",
        "example..com",
        "-example.com",
        "ab--cd.example",  # hyphens in positions 3 and 4 are reserved for A-labels
        "xn--zz.example",  # not a valid A-label
        "exa_mple.com",
        "exa mple.com",
        "a@b:5222",
        "\u265a.example",  # a symbol: not PVALID in IDNA2008
        "a" * 64 + ".example",  # DNS label limit
        ".".join(["a" * 63] * 4) + ".example",  # DNS name limit (253 octets)
    ],
)
def test_invalid_domains(text: str) -> None:
    with pytest.raises(JIDError) as info:
        JID(text)
    assert info.value.part == JIDPart.DOMAIN


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("juliet@192.0.2.1/r", "192.0.2.1"),
        ("[::1]", "[::1]"),
        ("juliet@[2001:DB8:0:0:0:0:0:1]/r", "[2001:db8::1]"),
        ("[2001:0db8::0001]", "[2001:db8::1]"),
    ],
)
def test_ip_literals(text: str, domain: str) -> None:
    j = JID(text)
    assert j.domain == domain
    assert JID(str(j)) == j


@pytest.mark.parametrize(
    "text",
    ["[::1", "[]", "[example.com]", "[fe80::1%eth0]", "[1.2.3.4]", "::1", "256.0.0.1", "1.2.3", "01.2.3.4"],
)
def test_invalid_ip_literals(text: str) -> None:
    with pytest.raises(JIDError) as info:
        JID(text)
    assert info.value.part == JIDPart.DOMAIN


# --- size limits (RFC 7622 §3.1) --------------------------------------------------------------------------


def test_part_size_limit_is_in_utf8_bytes() -> None:
    assert len(JID("a" * MAX_PART_BYTES + "@example.com").local or "") == 1023
    assert JID("example.com/" + "r" * MAX_PART_BYTES).resource == "r" * 1023
    assert JID("\u00e9" * 511 + "a@example.com").local is not None  # 1023 bytes
    for text, part in [
        ("a" * 1024 + "@example.com", JIDPart.LOCAL),
        ("\u00e9" * 512 + "@example.com", JIDPart.LOCAL),  # 512 characters, 1024 bytes
        ("example.com/" + "\u265a" * 342, JIDPart.RESOURCE),  # 1026 bytes
        ("example.com/" + "r" * 100_000, JIDPart.RESOURCE),
    ]:
        with pytest.raises(JIDError, match="longer than 1023 bytes") as info:
            JID(text)
        assert info.value.part == part


def test_size_limit_applies_to_the_prepared_form() -> None:
    # 1023 decomposed characters of two code points each compose to 1023 two-byte characters: 2046 bytes
    with pytest.raises(JIDError, match="longer than 1023 bytes"):
        JID("example.com/" + "e\u0301" * 1023)
    # and 'e' + COMBINING ACUTE (3 bytes) composes to a 2-byte character, so this fits once prepared
    j = JID("example.com/" + "e\u0301" * 511 + "x")
    assert j.resource is not None
    assert len(j.resource.encode()) == 1023


# --- the value type ---------------------------------------------------------------------------------------


def test_parts_and_kinds() -> None:
    full = JID("juliet@example.com/balcony")
    bare = JID("juliet@example.com")
    domain = JID("example.com")
    assert (full.is_full, full.is_bare, full.is_domain) == (True, False, False)
    assert (bare.is_full, bare.is_bare, bare.is_domain) == (False, True, False)
    assert (domain.is_full, domain.is_bare, domain.is_domain) == (False, True, True)
    assert not JID("example.com/r").is_domain
    assert full.bare == bare
    assert bare.bare is bare
    assert full.bare.resource is None


def test_with_resource_prepares_the_new_resource() -> None:
    bare = JID("juliet@example.com")
    full = bare.with_resource("Bal\u3000cony")
    assert str(full) == "juliet@example.com/Bal cony"
    assert full.with_resource(None) == bare
    assert full.with_resource("other") == JID("juliet@example.com/other")
    with pytest.raises(JIDError) as info:
        bare.with_resource("")
    assert info.value.part == JIDPart.RESOURCE


def test_from_parts() -> None:
    assert JID.from_parts("Juliet", "Example.COM", "Balcony") == JID("juliet@example.com/Balcony")
    assert JID.from_parts(None, "example.com") == JID("example.com")
    # a resource built from parts may hold '/' and '@' just as a parsed one may
    assert JID.from_parts("a", "example.com", "x/y@z") == JID("a@example.com/x/y@z")
    with pytest.raises(JIDError) as info:
        JID.from_parts("a", "example.com/x")
    assert info.value.part == JIDPart.DOMAIN
    with pytest.raises(JIDError) as info:
        JID.from_parts("", "example.com")
    assert info.value.part == JIDPart.LOCAL


def test_equality_hashing_and_repr() -> None:
    j = JID("Juliet@Example.com/Balcony")
    assert j == JID("juliet@example.com/Balcony")
    assert len({j, JID("juliet@example.com/Balcony"), JID("JULIET@example.com/Balcony")}) == 1
    assert j != "juliet@example.com/Balcony"  # only JIDs compare equal to JIDs
    assert repr(j) == "JID('juliet@example.com/Balcony')"
    assert eval(repr(j), {"JID": JID}) == j


def test_immutable_and_copyable() -> None:
    j = JID("juliet@example.com/balcony")
    with pytest.raises(AttributeError):
        j._local = "romeo"
    with pytest.raises(AttributeError):
        j.foo = 1
    with pytest.raises(AttributeError):
        del j._domain
    assert j.local == "juliet"
    assert copy.copy(j) is j
    assert copy.deepcopy(j) is j
    assert pickle.loads(pickle.dumps(j)) == j


def test_rejects_non_strings() -> None:
    with pytest.raises(TypeError):
        JID(b"juliet@example.com")  # type: ignore[arg-type]


def test_repeated_parsing_hits_the_bounded_cache() -> None:
    cache = jid_module._split_and_prepare_cached
    assert cache.cache_info().maxsize == 4096
    JID("cache-probe@example.com/r")
    before = cache.cache_info().hits
    for _ in range(10):
        JID("cache-probe@example.com/r")
    assert cache.cache_info().hits == before + 10


def test_long_inputs_bypass_the_cache() -> None:
    cache = jid_module._split_and_prepare_cached
    text = "a@example.com/" + "r" * 600
    before = cache.cache_info()
    assert JID(text) == JID(text)
    after = cache.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


# --- XEP-0106 JID escaping --------------------------------------------------------------------------------

# XEP-0106 §5.1, examples 1-8 and 12: (user input, escaped localpart)
XEP_0106_EXAMPLES = [
    ("space cadet", "space\\20cadet"),
    ('call me "ishmael"', "call\\20me\\20\\22ishmael\\22"),
    ("at&t guy", "at\\26t\\20guy"),
    ("d'artagnan", "d\\27artagnan"),
    ("/.fanboy", "\\2f.fanboy"),
    ("::foo::", "\\3a\\3afoo\\3a\\3a"),
    ("<foo>", "\\3cfoo\\3e"),
    ("user@host", "user\\40host"),
    ("c:\\5commas", "c\\3a\\5c5commas"),
]


@pytest.mark.parametrize(("raw", "escaped"), XEP_0106_EXAMPLES)
def test_xep0106_examples(raw: str, escaped: str) -> None:
    assert escape_local(raw) == escaped
    assert unescape_local(escaped) == raw
    assert JID.from_parts(raw, "example.com", escape=True) == JID(f"{escaped}@example.com")


@pytest.mark.parametrize(
    ("raw", "table_form", "ours"),
    [
        ("c:\\net", "c\\3a\\5cnet", "c\\3a\\net"),
        ("c:\\\\net", "c\\3a\\5c\\5cnet", "c\\3a\\\\net"),
        ("c:\\cool stuff", "c\\3a\\5ccool\\20stuff", "c\\3a\\cool\\20stuff"),
    ],
)
def test_xep0106_backslash_not_before_a_sequence_is_kept(raw: str, table_form: str, ours: str) -> None:
    # §5.1 examples 9-11 escape every backslash, but §4.1 rule 7 and §4.3 escape one only where it starts
    # an escape sequence. We follow the rules; both forms unescape to the user's input.
    assert escape_local(raw) == ours
    assert unescape_local(ours) == raw
    assert unescape_local(table_form) == raw


@pytest.mark.parametrize("text", ["\\2plus\\2is\\4", "foo\\bar", "foob\\41r", "a\\2Fb", "\\", "x\\5"])
def test_xep0106_partial_and_unknown_sequences_are_untouched(text: str) -> None:
    # XEP-0106 §4.3; sequences are lowercase only (§3.1), so "\2F" is not one
    assert escape_local(text) == text
    assert unescape_local(text) == text


def test_xep0106_backslash_escaped_before_a_sequence() -> None:
    # §4.2's Wireless Village example: \3a and \5c in the source must not read as escapes
    assert escape_local("\\3and\\2is\\5cool") == "\\5c3and\\2is\\5c5cool"
    assert unescape_local("\\5c3and\\2is\\5c5cool") == "\\3and\\2is\\5cool"
    assert escape_local("\\5c") == "\\5c5c"
    assert escape_local("\\27") == "\\5c27"


@pytest.mark.parametrize("text", [" cadet", "cadet ", " ", "a "])
def test_xep0106_no_leading_or_trailing_space(text: str) -> None:
    # §4.1 rule 6: \20 is never the first or last thing in an escaped localpart
    with pytest.raises(JIDError) as info:
        escape_local(text)
    assert info.value.part == JIDPart.LOCAL
    with pytest.raises(JIDError):
        JID.from_parts(text, "example.com", escape=True)


def test_xep0106_email_example() -> None:
    # §5.2
    raw = "here's_a_wild_&_/cr%zy/_address"
    escaped = "here\\27s_a_wild_\\26_\\2fcr%zy\\2f_address"
    j = JID.from_parts(raw, "example.com", escape=True)
    assert j.local == escaped
    assert unescape_local(j.local) == raw


def test_escaped_sequences_are_case_mapped_by_preparation() -> None:
    # the localpart is case-mapped after escaping, so "\2F" from a peer prepares to "\2f" and displays as '/'
    j = JID("a\\2Fb@example.com")
    assert j.local == "a\\2fb"
    assert unescape_local(j.local) == "a/b"


# --- properties -------------------------------------------------------------------------------------------

_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789\u00e4\u00f6\u00fc\u00e9\u00f1\u00df\u03c0\u4f8b\u30c6"
_labels = st.text(alphabet=_LABEL_CHARS, min_size=1, max_size=20).filter(
    lambda s: not s.startswith("xn--") and s[2:4] != "--"
)
_domains = st.one_of(
    st.lists(_labels, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
)
_locals = st.one_of(
    st.none(),
    st.text(st.characters(categories=("Ll", "Lu", "Lo", "Nd", "Pc", "Pd")), min_size=1, max_size=30),
    st.text(alphabet="abcXYZ019._-+\\!#$%", min_size=1, max_size=30),
)
_resources = st.one_of(st.none(), st.text(min_size=1, max_size=40))


def _keep_if_valid(prepare: Callable[[str], str], value: str | None) -> str | None:
    if value is None:
        return None
    try:
        prepare(value)
    except JIDError:
        return None
    return value


@st.composite
def _valid_jids(draw: st.DrawFn) -> JID:
    # a drawn part that PRECIS or IDNA rejects (bidi rule, compatibility characters, ...) is left out, so
    # every draw yields a JID and the property still covers every kind of valid part
    local = _keep_if_valid(prepare_localpart, draw(_locals))
    domain = _keep_if_valid(prepare_domainpart, draw(_domains)) or "example.com"
    resource = _keep_if_valid(prepare_resourcepart, draw(_resources))
    return JID.from_parts(local, domain, resource)


@given(_valid_jids())
@settings(max_examples=400)
def test_canonical_string_round_trips(j: JID) -> None:
    again = JID(str(j))
    assert again == j
    assert str(again) == str(j)
    assert hash(again) == hash(j)
    assert (again.local, again.domain, again.resource) == (j.local, j.domain, j.resource)


@given(st.text(max_size=200))
@settings(max_examples=1000)
def test_arbitrary_text_parses_or_raises_jiderror(text: str) -> None:
    try:
        j = JID(text)
    except JIDError as exc:
        assert exc.part in set(JIDPart)
        return
    assert JID(str(j)) == j


_SEPARATOR_HEAVY = "aZ\u00df\u03a3@/.[]:%\\- \u3002\uff0e\u200d\u05d0\u0301"


@given(st.text(alphabet=st.sampled_from(_SEPARATOR_HEAVY), max_size=40))
@settings(max_examples=1000)
def test_separator_heavy_text_parses_or_raises_jiderror(text: str) -> None:
    try:
        j = JID(text)
    except JIDError:
        return
    assert JID(str(j)) == j


@given(st.text(max_size=60).filter(lambda s: not s.startswith(" ") and not s.endswith(" ")))
@settings(max_examples=500)
def test_escape_round_trips(text: str) -> None:
    assert unescape_local(escape_local(text)) == text
    escaped = escape_local(text)
    for char in " \"&'/:<>@":
        assert char not in escaped


# --- the printable-ASCII shortcut gives what the full PRECIS preparation gives ----------------------------


def _full_precis(profile: str, raw: str) -> str | None:
    import precis_i18n

    try:
        return str(precis_i18n.get_profile(profile).enforce(raw))
    except UnicodeEncodeError:
        return None


def _ours(prepare: Callable[[str], str], raw: str) -> str | None:
    try:
        return prepare(raw)
    except JIDError:
        return None


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40))
def test_ascii_localpart_matches_username_case_mapped(raw: str) -> None:
    # RFC 7622 §3.3: UsernameCaseMapped, then the excluded characters of §3.3.1.
    expected = _full_precis("UsernameCaseMapped", raw)
    if expected is not None and any(c in expected for c in "\"&'/:<>@"):
        expected = None
    assert _ours(prepare_localpart, raw) == expected


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40))
def test_ascii_resourcepart_matches_opaque_string(raw: str) -> None:
    # RFC 7622 §3.4: the OpaqueString profile.
    assert _ours(prepare_resourcepart, raw) == _full_precis("OpaqueString", raw)


def test_every_printable_ascii_character_as_in_precis() -> None:
    for code in range(0x20, 0x7F):
        raw = chr(code) * 2
        assert _ours(prepare_resourcepart, raw) == _full_precis("OpaqueString", raw)
        try:
            mapped: str | None = jid_module.username_case_mapped(raw)
        except UnicodeEncodeError:
            mapped = None
        assert mapped == _full_precis("UsernameCaseMapped", raw)

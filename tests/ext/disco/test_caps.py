"""XEP-0115 §5: the verification string and ``ver`` hash, checked against the XEP's own examples."""

from __future__ import annotations

from jaybird.ext.disco.caps import Caps, caps_ver, verification_string
from jaybird.ext.disco.wire import DATA_FORM, DiscoIdentity
from jaybird.xml.element import Element

CAPS = "http://jabber.org/protocol/caps"
INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"
MUC = "http://jabber.org/protocol/muc"


def test_simple_generation_example() -> None:
    """XEP-0115 §5.2."""
    identities = [DiscoIdentity("client", "pc", "Exodus 0.9.1")]
    features = [INFO, ITEMS, MUC, CAPS]  # order does not matter: they are sorted
    assert verification_string(identities, features) == f"client/pc//Exodus 0.9.1<{CAPS}<{INFO}<{ITEMS}<{MUC}<"
    assert caps_ver(identities, features) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def _field(var: str, *values: str, type_: str | None = None) -> Element:
    field = Element(f"{{{DATA_FORM}}}field", {"var": var, **({"type": type_} if type_ else {})})
    for value in values:
        field.add(f"{{{DATA_FORM}}}value", text=value)
    return field


def test_complex_generation_example() -> None:
    """XEP-0115 §5.3: two identities in different languages, and an extended-information form (XEP-0128)."""
    identities = [DiscoIdentity("client", "pc", "Psi 0.11", "en"), DiscoIdentity("client", "pc", "Ψ 0.11", "el")]
    form = Element(f"{{{DATA_FORM}}}x", {"type": "result"})
    form.children.extend(
        [
            _field("FORM_TYPE", "urn:xmpp:dataforms:softwareinfo", type_="hidden"),
            _field("ip_version", "ipv6", "ipv4"),  # values are sorted too
            _field("software", "Psi"),
            _field("software_version", "0.11"),
            _field("os", "Mac"),
            _field("os_version", "10.5.1"),
        ]
    )
    features = [CAPS, INFO, ITEMS, MUC]
    assert verification_string(identities, features, [form]) == (
        f"client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<{CAPS}<{INFO}<{ITEMS}<{MUC}<"
        "urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<"
        "software<Psi<software_version<0.11<"
    )
    assert caps_ver(identities, features, [form]) == "q07IKJEyjvHSyhy//CH0CxmKi8w="


def test_a_form_without_form_type_is_left_out() -> None:
    """XEP-0115 §5.4 step 3.6."""
    identities = [DiscoIdentity("client", "pc", "Exodus 0.9.1")]
    form = Element(f"{{{DATA_FORM}}}x", {"type": "result"})
    form.append(_field("os", "Mac"))
    assert caps_ver(identities, [INFO, ITEMS, MUC, CAPS], [form]) == "QgayPKawpkPSDYmwT/WM94uAlu0="


def test_caps_element_round_trips() -> None:
    caps = Caps(node="urn:example", ver="QgayPKawpkPSDYmwT/WM94uAlu0=")
    element = caps.to_element()
    assert element.name == f"{{{CAPS}}}c"
    assert element.attrs == {"hash": "sha-1", "node": "urn:example", "ver": "QgayPKawpkPSDYmwT/WM94uAlu0="}
    assert Caps.from_element(element) == caps

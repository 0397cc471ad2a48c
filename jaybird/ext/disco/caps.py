"""XEP-0115 entity capabilities: the verification string and the ``<c/>`` element that carries it."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from jaybird.ext.disco.wire import DATA_FORM, DiscoIdentity
from jaybird.xml.element import Element

CAPS = "http://jabber.org/protocol/caps"
NAME = f"{{{CAPS}}}c"
_FIELD = f"{{{DATA_FORM}}}field"
_VALUE = f"{{{DATA_FORM}}}value"
_FORM_TYPE = "FORM_TYPE"


def _form_fields(form: Element) -> dict[str, list[str]]:
    return {f.attrs.get("var", ""): [v.text for v in f.find_all(_VALUE)] for f in form.find_all(_FIELD)}


def verification_string(
    identities: Iterable[DiscoIdentity], features: Iterable[str], forms: Iterable[Element] = ()
) -> str:
    """The string S of XEP-0115 §5.1, before hashing.

    Python orders strings by code point, which is the byte order of their UTF-8 form: the ``i;octet``
    collation (RFC 4790) the XEP asks for.
    """
    parts: list[str] = []
    for identity in sorted(set(identities), key=lambda i: (i.category, i.type, i.lang or "", i.name or "")):
        parts.append(f"{identity.category}/{identity.type}/{identity.lang or ''}/{identity.name or ''}<")
    parts.extend(f"{feature}<" for feature in sorted(set(features)))
    typed: list[tuple[str, dict[str, list[str]]]] = []
    for form in forms:
        fields = _form_fields(form)
        form_type = fields.pop(_FORM_TYPE, None)
        if form_type:  # §5.4 3.6: a form without FORM_TYPE is left out
            typed.append((form_type[0], fields))
    for type_name, type_fields in sorted(typed, key=lambda t: t[0]):
        parts.append(f"{type_name}<")
        for name in sorted(type_fields):
            parts.append(f"{name}<")
            parts.extend(f"{value}<" for value in sorted(type_fields[name]))
    return "".join(parts)


def caps_ver(identities: Iterable[DiscoIdentity], features: Iterable[str], forms: Iterable[Element] = ()) -> str:
    """The ``ver`` attribute: base64 of the SHA-1 of the verification string (XEP-0115 §5.1 steps 7-8)."""
    digest = hashlib.sha1(verification_string(identities, features, forms).encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class Caps:
    """``<c xmlns='http://jabber.org/protocol/caps' hash node ver/>`` (XEP-0115 §4)."""

    name: ClassVar[str] = NAME

    node: str
    ver: str
    hash: str = "sha-1"

    @classmethod
    def from_element(cls, element: Element) -> Self:
        return cls(
            node=element.attrs.get("node", ""), ver=element.attrs.get("ver", ""), hash=element.attrs.get("hash", "")
        )

    def to_element(self) -> Element:
        return Element(NAME, {"hash": self.hash, "node": self.node, "ver": self.ver})

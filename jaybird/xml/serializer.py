"""Serialize :class:`~jaybird.xml.element.Element` trees to XML text.

Namespaces: an element whose namespace equals the one in scope is written without ``xmlns``; namespaces named
in ``prefixes`` (``stream:`` on a stream, ``db:`` on server-to-server) are written with their prefix and assumed
declared by the stream header; any other attribute namespace gets a generated prefix declared on the element.
Elements in ``jabber:client`` (the internal stanza namespace) are written in ``content_ns``, the namespace the
stream declared, so one stanza object serves client, server and component streams alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jaybird import ns
from jaybird.xml.element import Element

__all__ = ["escape_attr", "escape_text", "serialize"]

_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NO_PREFIXES: Mapping[str, str] = {ns.XML: "xml"}


def _check(value: str) -> None:
    if _INVALID_CHARS.search(value):
        raise ValueError(f"character not allowed in XML 1.0: {value!r}")


def escape_text(value: str) -> str:
    _check(value)
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    return value


def escape_attr(value: str) -> str:
    _check(value)
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    if '"' in value:
        value = value.replace('"', "&quot;")
    # Attribute-value normalisation (XML 1.0 §3.3.3) would turn raw whitespace into spaces.
    if "\n" in value or "\r" in value or "\t" in value:
        value = value.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return value


def serialize(
    element: Element,
    *,
    default_ns: str | None = None,
    content_ns: str = ns.CLIENT,
    prefixes: Mapping[str, str] | None = None,
) -> str:
    """Return ``element`` as XML text.

    ``default_ns`` is the default namespace in scope where the element is written (a stream's, for a stanza
    on a stream; None for a stand-alone document). ``prefixes`` maps namespaces to prefixes already declared.
    """
    scope = dict(_NO_PREFIXES)
    if prefixes:
        scope.update(prefixes)
    out: list[str] = []
    _write(element, out, default_ns, content_ns, scope)
    return "".join(out)


def _write(el: Element, out: list[str], default: str | None, content_ns: str, scope: dict[str, str]) -> None:
    name = el.name
    declare: list[str] = []
    if name[0] == "{":
        end = name.index("}")
        namespace, local = name[1:end], name[end + 1 :]
        if namespace == ns.CLIENT:
            namespace = content_ns
    else:
        namespace, local = "", name
    prefix = scope.get(namespace) if namespace != default else None
    if prefix is not None:
        tag = f"{prefix}:{local}"  # the prefix is declared by the stream header (or is xml:)
        inner_default = default
    else:
        tag = local
        if namespace != default:
            declare.append(f' xmlns="{escape_attr(namespace)}"')
        inner_default = namespace
    out.append("<" + tag)
    out.extend(declare)
    child_scope = scope
    for key, value in el.attrs.items():
        if key[0] == "{":
            end = key.index("}")
            attr_ns, attr_local = key[1:end], key[end + 1 :]
            attr_prefix = child_scope.get(attr_ns)
            if attr_prefix is None:
                if child_scope is scope:
                    child_scope = dict(scope)
                attr_prefix = f"ns{len(child_scope)}"
                child_scope[attr_ns] = attr_prefix
                out.append(f' xmlns:{attr_prefix}="{escape_attr(attr_ns)}"')
            out.append(f' {attr_prefix}:{attr_local}="{escape_attr(value)}"')
        else:
            out.append(f' {key}="{escape_attr(value)}"')
    if not el.children:
        out.append("/>")
        return
    out.append(">")
    for child in el.children:
        if isinstance(child, str):
            out.append(escape_text(child))
        else:
            _write(child, out, inner_default, content_ns, child_scope)
    out.append(f"</{tag}>")

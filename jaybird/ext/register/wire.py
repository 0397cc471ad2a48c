"""The ``<query xmlns='jabber:iq:register'/>`` payload (XEP-0077 §3) and the stream feature element."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Self

from jaybird import ns
from jaybird.xml.element import Element

__all__ = ["FEATURE", "FEATURE_NS", "NAME", "NS", "RegisterQuery"]

NS: Final = ns.REGISTER
NAME: Final = ns.clark(NS, "query")
#: XEP-0077 §4: advertised among the stream features when registration is open before authentication.
FEATURE_NS: Final = "http://jabber.org/features/iq-register"
FEATURE: Final = ns.clark(FEATURE_NS, "register")

_USERNAME: Final = ns.clark(NS, "username")
_PASSWORD: Final = ns.clark(NS, "password")
_REMOVE: Final = ns.clark(NS, "remove")
_REGISTERED: Final = ns.clark(NS, "registered")
_INSTRUCTIONS: Final = ns.clark(NS, "instructions")


@dataclass(frozen=True, slots=True)
class RegisterQuery:
    """One query: a form (get result), a submission (set), a removal (``remove``).

    ``username`` / ``password`` are None when the element is absent and ``""`` when it is present but empty
    (a form field to fill in, XEP-0077 §3.1). ``only_remove`` tells that ``<remove/>`` came alone, as §3.2
    requires.
    """

    name: ClassVar[str] = NAME
    username: str | None = None
    password: str | None = None
    remove: bool = False
    registered: bool = False
    instructions: str | None = None
    only_remove: bool = False

    @classmethod
    def from_element(cls, element: Element) -> Self:
        if element.name != NAME:
            raise ValueError(f"not a registration query: {element.name}")
        children = list(element.elements())
        username = element.find(_USERNAME)
        password = element.find(_PASSWORD)
        remove = element.find(_REMOVE) is not None
        return cls(
            username=None if username is None else username.text,
            password=None if password is None else password.text,
            remove=remove,
            registered=element.find(_REGISTERED) is not None,
            instructions=element.find_text(_INSTRUCTIONS),
            only_remove=remove and len(children) == 1,
        )

    def to_element(self) -> Element:
        el = Element(NAME)
        if self.instructions is not None:
            el.add(_INSTRUCTIONS, text=self.instructions)
        if self.registered:
            el.add(_REGISTERED)
        if self.username is not None:
            el.add(_USERNAME, text=self.username)
        if self.password is not None:
            el.add(_PASSWORD, text=self.password)
        if self.remove:
            el.add(_REMOVE)
        return el

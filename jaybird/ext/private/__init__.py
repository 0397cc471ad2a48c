"""XEP-0049: Private XML Storage (``jabber:iq:private``)."""

XEPS = ("XEP-0049",)

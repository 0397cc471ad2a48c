"""XEP-0199: XMPP Ping."""

XEPS = ("XEP-0199",)

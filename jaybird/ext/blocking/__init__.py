"""XEP-0191: Blocking Command (a blocklist the server enforces both ways)."""

XEPS = ("XEP-0191",)

"""XEP-0012: Last Activity (server uptime, and an account's time since logout)."""

XEPS = ("XEP-0012",)

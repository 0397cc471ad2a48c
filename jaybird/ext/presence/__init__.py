"""Presence: subscriptions (RFC 6121 §3, Appendix A), pre-approval (§3.4), and presence exchange (§4)."""

XEPS = ("RFC 6121 §3", "RFC 6121 §4")

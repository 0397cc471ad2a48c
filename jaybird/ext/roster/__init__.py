"""Roster management: RFC 6121 §2 (get, set, remove, pushes) and roster versioning (RFC 6121 §2.6, XEP-0237)."""

XEPS = ("RFC 6121 §2", "XEP-0237")

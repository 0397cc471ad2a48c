"""XEP-0077: In-Band Registration (account creation, password change, account removal)."""

XEPS = ("XEP-0077",)

"""XEP-0054: vcard-temp (a user's vCard, stored by the server and readable by others)."""

XEPS = ("XEP-0054",)

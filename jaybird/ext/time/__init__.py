"""XEP-0202: Entity Time (dates and times as XEP-0082 profiles)."""

XEPS = ("XEP-0202", "XEP-0082")

"""XEP-0160: Best Practices for Handling Offline Messages, with XEP-0203 delay stamps."""

XEPS = ("XEP-0160", "XEP-0203", "XEP-0334")

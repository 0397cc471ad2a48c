"""XEP-0092: Software Version."""

XEPS = ("XEP-0092",)

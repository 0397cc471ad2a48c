"""XEP-0030: Service Discovery, and XEP-0115: Entity Capabilities (the server's own ``ver`` hash)."""

XEPS = ("XEP-0030", "XEP-0115")

"""jaybird: an XMPP server and library.

The protocol core is sans-I/O (bytes in, events out); the asyncio client, component and server drive it.
"""

__version__ = "0.1.0"

"""The jaybird XMPP server: core, sessions, routing, storage."""

"""Stream features contributed by modules, on the wire: roster versioning (RFC 6121 §2.6.1) and pre-approval
(RFC 6121 §3.4.1) after authentication only; the server's entity capabilities (XEP-0115 §6.3) on every stream."""

from __future__ import annotations

import re

from tests.server.conftest import ServerFactory

FEATURES = re.compile(r"<stream:features>.*?</stream:features>", re.S)


async def features_seen(start_server: ServerFactory, modules: list[str] | None) -> list[str]:
    running = await start_server(modules=modules)
    juliet = await running.add_user("juliet", "balcony")
    lines: list[str] = []
    async with running.client(juliet, "balcony", console=lambda direction, text: lines.append(text)):
        pass
    return FEATURES.findall("".join(lines))


async def test_module_features_follow_authentication(start_server: ServerFactory) -> None:
    seen = await features_seen(start_server, None)  # the default modules
    assert len(seen) == 3  # before TLS, after TLS, after SASL
    before_auth, after_auth = seen[1], seen[2]
    assert "urn:xmpp:features:rosterver" not in before_auth and "urn:xmpp:features:pre-approval" not in before_auth
    assert '<ver xmlns="urn:xmpp:features:rosterver"/>' in after_auth
    assert '<sub xmlns="urn:xmpp:features:pre-approval"/>' in after_auth
    for features in seen:
        caps = re.search(r'<c xmlns="http://jabber.org/protocol/caps"[^>]*>', features)
        assert caps is not None and 'hash="sha-1"' in caps.group(0) and "ver=" in caps.group(0)


async def test_no_module_no_feature(start_server: ServerFactory) -> None:
    seen = await features_seen(start_server, [])
    assert not any("rosterver" in f or "pre-approval" in f or "protocol/caps" in f for f in seen)

"""DNS SRV resolution (RFC 6120 §3.2, RFC 2782, XEP-0368) against an injected resolver: no network."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import dns.exception
import dns.resolver
import pytest

from jaybird.transport.dns import SRVRecord, Target, order_records, resolve_xmpp
from jaybird.transport.errors import ServiceNotAvailableError


@dataclass(frozen=True)
class FakeSRV:
    priority: int
    weight: int
    port: int
    target: str


class FakeResolver:
    """Answers from a table; a name that is missing is NXDOMAIN; a value that is an exception is raised."""

    def __init__(self, table: dict[str, list[FakeSRV] | Exception]) -> None:
        self.table = table
        self.queries: list[tuple[str, str]] = []

    async def resolve(self, qname: str, rdtype: str) -> Iterable[FakeSRV]:
        self.queries.append((qname, rdtype))
        answer = self.table.get(qname)
        if answer is None:
            raise dns.resolver.NXDOMAIN()  # type: ignore[no-untyped-call]
        if isinstance(answer, Exception):
            raise answer
        return answer


C = "_xmpp-client._tcp.example.com."
CS = "_xmpps-client._tcp.example.com."


async def test_queries_both_services_for_the_domain() -> None:
    resolver = FakeResolver({})
    await resolve_xmpp("Example.COM", resolver=resolver)
    assert sorted(resolver.queries) == [(C, "SRV"), (CS, "SRV")]


async def test_server_service_uses_server_records_and_port() -> None:
    resolver = FakeResolver({"_xmpp-server._tcp.example.com.": [FakeSRV(0, 0, 5270, "s2s.example.com.")]})
    assert await resolve_xmpp("example.com", service="server", resolver=resolver) == [
        Target("s2s.example.com", 5270, False)
    ]
    # RFC 6120 §3.2.2: the s2s fallback port is 5269.
    assert await resolve_xmpp("other.example", service="server", resolver=resolver) == [
        Target("other.example", 5269, False)
    ]


async def test_orders_by_priority_lowest_first() -> None:
    resolver = FakeResolver(
        {
            C: [
                FakeSRV(20, 0, 5222, "c.example.com."),
                FakeSRV(5, 0, 5222, "a.example.com."),
                FakeSRV(10, 0, 5222, "b.example.com."),
            ]
        }
    )
    targets = await resolve_xmpp("example.com", resolver=resolver)
    assert [t.host for t in targets] == ["a.example.com", "b.example.com", "c.example.com"]


@pytest.mark.parametrize(
    "nxdomain",
    [dns.resolver.NXDOMAIN(), dns.resolver.NoAnswer(), dns.exception.Timeout()],  # type: ignore[no-untyped-call]
)
async def test_falls_back_to_domain_5222_without_records(nxdomain: Exception) -> None:
    # RFC 6120 §3.2.2: no SRV answer (or a failed lookup) -> the domain itself on the default port.
    resolver = FakeResolver({C: nxdomain, CS: nxdomain})
    assert await resolve_xmpp("example.com", resolver=resolver) == [Target("example.com", 5222, False)]


async def test_single_dot_record_means_service_not_available() -> None:
    # RFC 2782 / RFC 6120 §3.2.1: target "." = decidedly not available; no A/AAAA fallback.
    resolver = FakeResolver({C: [FakeSRV(0, 0, 0, ".")]})
    with pytest.raises(ServiceNotAvailableError, match=r"example\.com.*'\.'"):
        await resolve_xmpp("example.com", resolver=resolver)


async def test_dot_for_direct_tls_only_still_uses_starttls_records() -> None:
    # XEP-0368 §5: "." for _xmpps- means no direct TLS; the _xmpp- records are used.
    resolver = FakeResolver({C: [FakeSRV(0, 0, 5222, "x.example.com.")], CS: [FakeSRV(0, 0, 0, ".")]})
    assert await resolve_xmpp("example.com", resolver=resolver) == [Target("x.example.com", 5222, False)]


async def test_dot_for_direct_tls_forbids_fallback() -> None:
    # XEP-0368 §5: MUST NOT fall back to A/AAAA once the domain has shown it publishes SRV records.
    resolver = FakeResolver({CS: [FakeSRV(0, 0, 0, ".")]})
    with pytest.raises(ServiceNotAvailableError):
        await resolve_xmpp("example.com", resolver=resolver)


async def test_dot_for_starttls_with_direct_tls_records_uses_them() -> None:
    resolver = FakeResolver({C: [FakeSRV(0, 0, 0, ".")], CS: [FakeSRV(0, 0, 443, "tls.example.com.")]})
    assert await resolve_xmpp("example.com", resolver=resolver) == [Target("tls.example.com", 443, True)]


async def test_merges_direct_tls_and_starttls_by_priority() -> None:
    # XEP-0368 §3 rule 1: both record sets are ordered as one; the operator's priorities decide.
    resolver = FakeResolver(
        {
            C: [FakeSRV(5, 0, 5222, "starttls-first.example.com."), FakeSRV(20, 0, 5222, "starttls-last.example.com.")],
            CS: [FakeSRV(10, 0, 5223, "tls-middle.example.com.")],
        }
    )
    targets = await resolve_xmpp("example.com", resolver=resolver)
    assert targets == [
        Target("starttls-first.example.com", 5222, False),
        Target("tls-middle.example.com", 5223, True),
        Target("starttls-last.example.com", 5222, False),
    ]


async def test_direct_tls_preferred_at_equal_priority_whatever_the_weights() -> None:
    resolver = FakeResolver(
        {C: [FakeSRV(0, 1000, 5222, "plain.example.com.")], CS: [FakeSRV(0, 1, 5223, "tls.example.com.")]}
    )
    for seed in range(20):
        targets = await resolve_xmpp("example.com", resolver=resolver, rng=random.Random(seed))
        assert [t.direct_tls for t in targets] == [True, False]


async def test_mixing_weights_when_direct_tls_not_preferred() -> None:
    resolver = FakeResolver(
        {C: [FakeSRV(0, 1000, 5222, "plain.example.com.")], CS: [FakeSRV(0, 1, 5223, "tls.example.com.")]}
    )
    firsts: Counter[str] = Counter()
    for seed in range(50):
        targets = await resolve_xmpp("example.com", resolver=resolver, rng=random.Random(seed), prefer_direct_tls=False)
        firsts[targets[0].host] += 1
    assert firsts["plain.example.com"] > 45


def _records(*weights: int) -> list[SRVRecord]:
    return [SRVRecord(1, w, 5222, f"h{i}", False) for i, w in enumerate(weights)]


def test_weighted_selection_follows_weights() -> None:
    # RFC 2782: within a priority, a record is picked first with probability weight / total.
    rng = random.Random(1234)
    firsts = Counter(order_records(_records(10, 30, 60), rng=rng)[0].host for _ in range(6000))
    assert firsts["h0"] / 6000 == pytest.approx(0.10, abs=0.02)
    assert firsts["h1"] / 6000 == pytest.approx(0.30, abs=0.03)
    assert firsts["h2"] / 6000 == pytest.approx(0.60, abs=0.03)


def test_weighted_selection_is_reproducible_with_a_seed_and_keeps_every_record() -> None:
    one = order_records(_records(1, 2, 3, 4), rng=random.Random(7))
    two = order_records(_records(1, 2, 3, 4), rng=random.Random(7))
    assert one == two
    assert sorted(t.host for t in one) == ["h0", "h1", "h2", "h3"]


def test_zero_weight_records_are_rarely_first_but_still_tried() -> None:
    rng = random.Random(99)
    firsts = Counter(order_records(_records(0, 100), rng=rng)[0].host for _ in range(2000))
    # A weight-0 record is first only when the draw is exactly 0: 1 in 101.
    assert firsts["h0"] < 60
    assert len(order_records(_records(0, 0, 0), rng=rng)) == 3


async def test_ip_literal_skips_dns() -> None:
    resolver = FakeResolver({})
    assert await resolve_xmpp("192.0.2.7", resolver=resolver) == [Target("192.0.2.7", 5222, False)]
    assert await resolve_xmpp("[2001:db8::1]", resolver=resolver) == [Target("2001:db8::1", 5222, False)]
    assert resolver.queries == []


async def test_overrides_skip_dns() -> None:
    resolver = FakeResolver({})
    fixed = [Target("127.0.0.1", 15222, False), Target("127.0.0.1", 15223, True)]
    assert await resolve_xmpp("Example.com", resolver=resolver, overrides={"example.com": fixed}) == fixed
    assert resolver.queries == []


async def test_idn_domain_is_queried_as_a_label() -> None:
    resolver = FakeResolver({})
    targets = await resolve_xmpp("bücher.example", resolver=resolver)
    assert ("_xmpp-client._tcp.xn--bcher-kva.example.", "SRV") in resolver.queries
    assert targets == [Target("xn--bcher-kva.example", 5222, False)]

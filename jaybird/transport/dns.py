"""Where to connect for an XMPP domain: DNS SRV (RFC 6120 §3.2, RFC 2782) with XEP-0368 direct TLS records.

Both ``_xmpp-<service>._tcp`` (STARTTLS) and ``_xmpps-<service>._tcp`` (direct TLS) are looked up at once.
XEP-0368 §3 rule 1 says the two sets SHOULD be ordered as one set of SRV records, priorities and weights
mixed, and that a client MAY prefer one kind. We mix the priorities (the operator decides which kind comes
first) and, within one priority, try the direct TLS records before the STARTTLS ones: direct TLS saves round
trips and cannot be stripped (XEP-0368 §6). ``prefer_direct_tls=False`` mixes the weights within a priority
as well.

Outcomes (RFC 6120 §3.2.1 / §3.2.2, RFC 2782, XEP-0368 §5):

* records found: every usable record, in connection order;
* a target of ``.`` is "decidedly not available". When it is the only answer for both services, or when
  ``_xmpp-`` says ``.`` and ``_xmpps-`` has nothing, :class:`ServiceNotAvailableError` is raised: the domain
  said it speaks no XMPP, so the A/AAAA fallback must not be tried;
* no SRV records at all (NXDOMAIN, no answer, or a failed lookup): the fallback ``(domain, 5222)``, or 5269
  for server-to-server, with STARTTLS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import dns.asyncresolver
import dns.exception
import dns.resolver
import idna

from jaybird.transport.errors import ServiceNotAvailableError

__all__ = ["DEFAULT_PORTS", "SRVResolver", "Target", "order_records", "resolve_xmpp"]

log = logging.getLogger(__name__)

Service = Literal["client", "server"]

#: RFC 6120 §3.2.2 (fallback process) and §14.7 (port numbers).
DEFAULT_PORTS: Final[Mapping[Service, int]] = {"client": 5222, "server": 5269}


@dataclass(frozen=True, slots=True)
class Target:
    """One place to connect. ``host`` is the SRV target, not the XMPP domain the certificate must name."""

    host: str
    port: int
    direct_tls: bool = False


@dataclass(frozen=True, slots=True)
class SRVRecord:
    """One SRV record, tagged with the service it came from."""

    priority: int
    weight: int
    port: int
    host: str
    direct_tls: bool


class SRVResolver(Protocol):
    """What :func:`resolve_xmpp` needs from a resolver; ``dns.asyncresolver.Resolver`` is one."""

    async def resolve(self, qname: str, rdtype: str) -> Iterable[Any]: ...


@dataclass(frozen=True, slots=True)
class _Lookup:
    records: tuple[SRVRecord, ...] = ()
    refused: bool = False  # the answer was the single "." record


def _ascii_domain(domain: str) -> str:
    domain = domain.rstrip(".").lower()
    if domain.isascii():
        return domain
    return idna.encode(domain, uts46=True).decode("ascii")


def _ip_literal(domain: str) -> str | None:
    """The address when ``domain`` is an IP literal (``[::1]`` in a JID, RFC 7622 §3.2), else None."""
    candidate = domain[1:-1] if domain.startswith("[") and domain.endswith("]") else domain
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


async def _lookup(resolver: SRVResolver, qname: str, direct_tls: bool) -> _Lookup:
    try:
        answer = await resolver.resolve(qname, "SRV")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return _Lookup()
    except dns.exception.DNSException as exc:
        # RFC 6120 §3.2.1 step 5: an SRV lookup that fails is treated like one that found nothing.
        log.debug("SRV lookup of %s failed: %s", qname, exc)
        return _Lookup()
    records: list[SRVRecord] = []
    refused = False
    for rdata in answer:
        host = str(rdata.target).rstrip(".")
        if not host:
            refused = True
            continue
        records.append(SRVRecord(int(rdata.priority), int(rdata.weight), int(rdata.port), host, direct_tls))
    # RFC 2782: "." means "not available" only as the single answer; next to real targets it is noise.
    return _Lookup(tuple(records), refused and not records)


def _weighted(records: Sequence[SRVRecord], rng: random.Random) -> list[SRVRecord]:
    """RFC 2782 weighted selection within one priority: weight-0 records first, then pick by running sum."""
    remaining = sorted(records, key=lambda r: r.weight != 0)
    ordered: list[SRVRecord] = []
    while remaining:
        pick = rng.randint(0, sum(r.weight for r in remaining))
        running = 0
        for index, record in enumerate(remaining):
            running += record.weight
            if running >= pick:
                ordered.append(remaining.pop(index))
                break
    return ordered


def order_records(
    records: Iterable[SRVRecord], *, rng: random.Random | None = None, prefer_direct_tls: bool = True
) -> list[Target]:
    """Connection order for ``records``: by priority, weighted random within one (see module docstring)."""
    rng = rng or random.Random()
    by_priority: dict[int, list[SRVRecord]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    ordered: list[SRVRecord] = []
    for priority in sorted(by_priority):
        group = by_priority[priority]
        if prefer_direct_tls:
            ordered += _weighted([r for r in group if r.direct_tls], rng)
            ordered += _weighted([r for r in group if not r.direct_tls], rng)
        else:
            ordered += _weighted(group, rng)
    return [Target(r.host, r.port, r.direct_tls) for r in ordered]


async def resolve_xmpp(
    domain: str,
    *,
    service: Service = "client",
    resolver: SRVResolver | None = None,
    overrides: Mapping[str, Sequence[Target]] | None = None,
    rng: random.Random | None = None,
    prefer_direct_tls: bool = True,
) -> list[Target]:
    """The targets to try, in order, to reach the XMPP ``service`` of ``domain``.

    ``overrides`` maps a domain to fixed targets and skips DNS for it; so does an IP-literal domain.
    Raises :class:`ServiceNotAvailableError` when DNS says the domain has no such service.
    """
    ascii_domain = _ascii_domain(domain)
    if overrides:
        for key, targets in overrides.items():
            if _ascii_domain(key) == ascii_domain:
                return list(targets)
    fallback = [Target(ascii_domain, DEFAULT_PORTS[service], False)]
    address = _ip_literal(ascii_domain)
    if address is not None:
        return [Target(address, DEFAULT_PORTS[service], False)]

    if resolver is None:
        try:
            resolver = dns.asyncresolver.get_default_resolver()
        except dns.exception.DNSException as exc:  # no usable resolv.conf: as if the lookup failed
            log.debug("no DNS resolver (%s), falling back to %s", exc, fallback[0])
            return fallback
    starttls, direct = await asyncio.gather(
        _lookup(resolver, f"_xmpp-{service}._tcp.{ascii_domain}.", direct_tls=False),
        _lookup(resolver, f"_xmpps-{service}._tcp.{ascii_domain}.", direct_tls=True),
    )
    records = starttls.records + direct.records
    if records:
        return order_records(records, rng=rng, prefer_direct_tls=prefer_direct_tls)
    if starttls.refused or direct.refused:
        # XEP-0368 §5: a "." for _xmpps- alone still forbids the A/AAAA fallback.
        raise ServiceNotAvailableError(domain, f"xmpp-{service}")
    log.debug("no SRV records for %s, falling back to %s", domain, fallback[0])
    return fallback

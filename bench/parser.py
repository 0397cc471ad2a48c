"""Benchmark: jaybird's XML stream parser against slixmpp's way of parsing, on one realistic stream.

The stream is a client-to-server stream of a realistic stanza mix (chats with chat states and receipts,
presence with caps and vCard updates, roster results of ~50 items, MAM results, MUC presence), fed in 4 KB
chunks as a socket would deliver it. Each parser must report every depth-1 element as a finished tree.

Run: ``.venv/bin/python bench/parser.py`` (``--quick`` for a few seconds' smoke run). Prints a table and
writes ``bench/results/parser.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import pyexpat
import random
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jaybird.xml.element import Element
from jaybird.xml.parser import ElementReceived, XMLStreamParser

CHUNK = 4096
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    b" to='example.org' from='juliet@example.org' version='1.0' xml:lang='en'>"
)
FOOTER = b"</stream:stream>"
WORDS = [
    "hello",
    "there",
    "how",
    "are",
    "you",
    "doing",
    "today",
    "the",
    "meeting",
    "moved",
    "to",
    "three",
    "o'clock",
    "see",
    "you",
    "&",
    "bring",
    "<snacks>",
    "café",
    "naïve",
    "日本語",
    "привет",
    "😀",
    "ok",
]

NAMES = ("romeo", "mercutio", "benvolio", "tybalt", "nurse", "friar", "paris", "rosaline", "balthasar")


def _text(rng: random.Random, low: int, high: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))
    return words.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _jid(rng: random.Random) -> str:
    return f"user{rng.randint(1, 5000)}@example.org/res{rng.randint(1, 9)}"


def _chat(rng: random.Random) -> str:
    sid = rng.getrandbits(48)
    return (
        f"<message to='juliet@example.org' from='{_jid(rng)}' type='chat' id='m{sid:x}'>"
        f"<body>{_text(rng, 3, 40)}</body><thread>t{sid % 997}</thread>"
        "<active xmlns='http://jabber.org/protocol/chatstates'/>"
        "<request xmlns='urn:xmpp:receipts'/>"
        f"<origin-id xmlns='urn:xmpp:sid:0' id='o{sid:x}'/></message>"
    )


def _presence(rng: random.Random) -> str:
    return (
        f"<presence from='{_jid(rng)}' to='juliet@example.org'><show>away</show>"
        f"<status>{_text(rng, 1, 8)}</status><priority>{rng.randint(-5, 50)}</priority>"
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im'"
        " ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>"
        "<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x></presence>"
    )


def _roster(rng: random.Random) -> str:
    items = "".join(
        f"<item jid='contact{rng.randint(1, 99999)}@example.net' name='{rng.choice(NAMES)} {i}'"
        f" subscription='{rng.choice(('both', 'to', 'from', 'none'))}'><group>{rng.choice(('Friends', 'Work'))}"
        "</group></item>"
        for i in range(rng.randint(40, 60))
    )
    return (
        f"<iq type='result' id='r{rng.getrandbits(32):x}' to='juliet@example.org/balcony'>"
        f"<query xmlns='jabber:iq:roster' ver='ver{rng.randint(1, 99)}'>{items}</query></iq>"
    )


def _mam(rng: random.Random) -> str:
    return (
        f"<message to='juliet@example.org/balcony' id='a{rng.getrandbits(32):x}'>"
        f"<result xmlns='urn:xmpp:mam:2' queryid='q1' id='{rng.getrandbits(64):x}'>"
        "<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2024-05-01T10:20:30Z'/>"
        f"<message xmlns='jabber:client' from='{_jid(rng)}' to='juliet@example.org' type='chat'>"
        f"<body>{_text(rng, 5, 60)}</body></message></forwarded></result></message>"
    )


def _muc_presence(rng: random.Random) -> str:
    nick = f"{rng.choice(NAMES)}{rng.randint(1, 999)}"
    return (
        f"<presence from='room@conference.example.org/{nick}' to='juliet@example.org/balcony'>"
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://psi-im.org'"
        " ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/>"
        "<x xmlns='http://jabber.org/protocol/muc#user'>"
        f"<item affiliation='member' role='participant' jid='{_jid(rng)}'/><status code='110'/></x></presence>"
    )


#: Relative frequencies: chats and presences dominate, rosters are rare but large.
MIX: tuple[tuple[Callable[[random.Random], str], int], ...] = (
    (_chat, 40),
    (_presence, 25),
    (_muc_presence, 20),
    (_mam, 14),
    (_roster, 1),
)


def build_stream(target_bytes: int, seed: int = 7) -> tuple[bytes, int]:
    """A whole stream of about ``target_bytes`` and the number of stanzas in it."""
    rng = random.Random(seed)
    makers = [maker for maker, _ in MIX]
    weights = [weight for _, weight in MIX]
    parts: list[str] = []
    size = count = 0
    while size < target_bytes:
        stanza = rng.choices(makers, weights)[0](rng)
        parts.append(stanza)
        size += len(stanza)
        count += 1
    return HEADER + "".join(parts).encode() + FOOTER, count


def chunks(data: bytes, size: int = CHUNK) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- the parsers under test: each takes the chunks and returns the number of depth-1 elements ---------------


def run_jaybird(pieces: list[bytes]) -> int:
    parser = XMLStreamParser(max_stanza_bytes=1 << 20)
    count = 0
    for piece in pieces:
        for event in parser.feed(piece):
            if type(event) is ElementReceived:
                count += 1
    return count


def _walk(element: Element) -> None:
    """Read every child of ``element``, recursively: what a consumer that looks at the whole stanza does."""
    for child in element.children:
        if isinstance(child, Element):
            _walk(child)


def _walk_et(element: ET.Element) -> None:
    for child in element:
        _walk_et(child)


def run_jaybird_walk(pieces: list[bytes]) -> int:
    parser = XMLStreamParser(max_stanza_bytes=1 << 20)
    count = 0
    for piece in pieces:
        for event in parser.feed(piece):
            if type(event) is ElementReceived:
                _walk(event.element)
                count += 1
    return count


def run_slixmpp_walk(pieces: list[bytes]) -> int:
    """slixmpp's parser, then every child of every stanza read (in its own C tree)."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(("start", "end"))
    depth = count = 0
    root: ET.Element | None = None
    for piece in pieces:
        parser.feed(piece)
        for record in parser.read_events():
            event, xml = cast(tuple[str, ET.Element], record)
            if event == "start":
                if depth == 0:
                    root = xml
                depth += 1
            elif event == "end":
                depth -= 1
                if depth == 1:
                    _walk_et(xml)
                    count += 1
                    if root is not None:
                        root.clear()
    return count


def run_slixmpp(pieces: list[bytes]) -> int:
    """slixmpp 1.17 ``XMLStream.data_received``: an ElementTree pull parser, depth counted per event."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(("start", "end"))
    depth = count = 0
    root: ET.Element | None = None
    for piece in pieces:
        parser.feed(piece)
        for record in parser.read_events():
            # typeshed's event type is a union the "start"/"end" events never take
            event, xml = cast(tuple[str, ET.Element], record)
            if event == "start":
                if depth == 0:
                    root = xml
                depth += 1
            elif event == "end":
                depth -= 1
                if depth == 1:
                    count += 1
                    if root is not None:
                        root.clear()
    return count


def run_slixmpp_stanzas(pieces: list[bytes]) -> int:
    """The same, plus what slixmpp does next before a handler sees a stanza: ``XMLStream._build_stanza``."""
    xmpp = _slixmpp_client()
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(("start", "end"))
    depth = count = 0
    root: ET.Element | None = None
    for piece in pieces:
        parser.feed(piece)
        for record in parser.read_events():
            # typeshed's event type is a union the "start"/"end" events never take
            event, xml = cast(tuple[str, ET.Element], record)
            if event == "start":
                if depth == 0:
                    root = xml
                depth += 1
            elif event == "end":
                depth -= 1
                if depth == 1:
                    xmpp._build_stanza(xml)
                    count += 1
                    if root is not None:
                        root.clear()
    return count


_CLIENTS: list[Any] = []


def _slixmpp_client() -> Any:
    """One offline ClientXMPP (never connected), made outside the timed runs after the first."""
    if not _CLIENTS:
        import slixmpp

        _CLIENTS.append(slixmpp.ClientXMPP("juliet@example.org/balcony", "secret"))
    return _CLIENTS[0]


def run_expat_raw(pieces: list[bytes]) -> int:
    """Tokenizing only (no tree): the floor any expat-based parser stands on."""
    parser = pyexpat.ParserCreate("UTF-8", "}")
    parser.buffer_text = True
    depth = 0
    count = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1

    def end(name: str) -> None:
        nonlocal depth, count
        depth -= 1
        if depth == 1:
            count += 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    for piece in pieces:
        parser.Parse(piece, False)
    return count


def run_lxml_raw(pieces: list[bytes]) -> int:
    """lxml's pull parser building its own tree, depth-1 elements collected and freed."""
    from lxml import etree

    parser = etree.XMLPullParser(events=("start", "end"), resolve_entities=False, no_network=True)
    depth = count = 0
    for piece in pieces:
        parser.feed(piece)
        for event, el in parser.read_events():
            if event == "start":
                depth += 1
            else:
                depth -= 1
                if depth == 1:
                    count += 1
                    el.clear()
                    parent = el.getparent()
                    if parent is not None:
                        parent.remove(el)
    return count


class _LxmlTarget:
    """The lxml engine candidate: a parser target that builds jaybird Elements (as XMLStreamParser does)."""

    def __init__(self) -> None:
        self.stack: list[Element] = []
        self.depth = 0
        self.count = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            return
        el = Element.__new__(Element)
        el.name = tag
        el.attrs = dict(attrib)
        el.children = []
        if self.stack:
            self.stack[-1].children.append(el)
        self.stack.append(el)

    def end(self, tag: str) -> None:
        self.depth -= 1
        if self.depth == 0:
            return
        self.stack.pop()
        if not self.stack:
            self.count += 1

    def data(self, data: str) -> None:
        if self.stack:
            children = self.stack[-1].children
            if children and type(children[-1]) is str:
                children[-1] += data
            else:
                children.append(data)

    def close(self) -> int:
        return self.count


def run_lxml_target(pieces: list[bytes]) -> int:
    from lxml import etree

    target = _LxmlTarget()
    parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True)
    for piece in pieces:
        parser.feed(piece)
    return target.count


PARSERS: dict[str, tuple[Callable[[list[bytes]], int], str]] = {
    "jaybird": (run_jaybird, "jaybird XMLStreamParser (expat, builds Element trees)"),
    "jaybird+walk": (run_jaybird_walk, "jaybird XMLStreamParser, every child of every stanza read"),
    "slixmpp": (run_slixmpp, "slixmpp 1.17 way: xml.etree XMLPullParser + depth counting"),
    "slixmpp+walk": (run_slixmpp_walk, "slixmpp's parser, every child of every stanza read"),
    "slixmpp+stanzas": (run_slixmpp_stanzas, "informative: slixmpp's parser + its stanza objects"),
    "lxml-target": (run_lxml_target, "engine candidate: lxml feed parser with a target building Elements"),
    "expat-raw": (run_expat_raw, "baseline: pyexpat tokenizing, no tree"),
    "lxml-raw": (run_lxml_raw, "baseline: lxml XMLPullParser, its own tree"),
}


def measure(
    runs: dict[str, Callable[[list[bytes]], int]], pieces: list[bytes], repeats: int
) -> dict[str, tuple[float, int]]:
    """Best CPU time of each parser; the parsers take turns so that a busy machine slows them all alike."""
    best = {name: (float("inf"), 0) for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            gc.collect()
            start = time.process_time()
            count = run(pieces)
            elapsed = time.process_time() - start
            best[name] = (min(best[name][0], elapsed), count)
    return best


def rows(results: dict[str, Any]) -> Iterator[str]:
    yield f"{'parser':<16} {'stanzas/s':>12} {'MB/s':>8} {'CPU s':>8}  what"
    for name, result in results["parsers"].items():
        yield (
            f"{name:<16} {result['stanzas_per_s']:>12,.0f} {result['mb_per_s']:>8.2f} {result['seconds']:>8.3f}"
            f"  {result['what']}"
        )


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    args.add_argument("--quick", action="store_true", help="tiny stream, one repeat: a smoke run")
    args.add_argument("--mb", type=float, default=16.0, help="stream size in MB (default 16)")
    args.add_argument("--repeats", type=int, default=3, help="runs per parser; the best is kept")
    args.add_argument("--only", nargs="*", choices=sorted(PARSERS), help="run only these parsers")
    args.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "parser.json")
    opts = args.parse_args(argv)
    size_mb = 0.25 if opts.quick else opts.mb
    repeats = 1 if opts.quick else opts.repeats

    data, stanzas = build_stream(int(size_mb * 1_000_000))
    pieces = chunks(data)
    print(f"stream: {len(data) / 1e6:.2f} MB, {stanzas} stanzas, {len(pieces)} chunks of {CHUNK} bytes")
    results: dict[str, Any] = {
        "stream_bytes": len(data),
        "stanzas": stanzas,
        "chunk_bytes": CHUNK,
        "repeats": repeats,
        "python": sys.version.split()[0],
        "expat": pyexpat.EXPAT_VERSION,
        "machine": platform.machine(),
        "parsers": {},
    }
    runs = {name: PARSERS[name][0] for name in opts.only or PARSERS}
    if "slixmpp+stanzas" in runs:
        _slixmpp_client()
    for name, (seconds, count) in measure(runs, pieces, repeats).items():
        if count != stanzas:
            print(f"{name}: counted {count} stanzas, expected {stanzas}", file=sys.stderr)
            return 1
        results["parsers"][name] = {
            "what": PARSERS[name][1],
            "seconds": seconds,
            "stanzas_per_s": stanzas / seconds,
            "mb_per_s": len(data) / 1e6 / seconds,
        }
    for line in rows(results):
        print(line)
    measured = results["parsers"]
    for mine, theirs in (
        ("jaybird", "slixmpp"),
        ("jaybird+walk", "slixmpp+walk"),
    ):
        if mine in measured and theirs in measured:
            ratio = measured[mine]["mb_per_s"] / measured[theirs]["mb_per_s"]
            print(f"{mine} / {theirs} throughput: {ratio:.2f}x")
            results[f"{mine}_over_{theirs}"] = ratio
    if not opts.quick:
        opts.output.parent.mkdir(parents=True, exist_ok=True)
        opts.output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {opts.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

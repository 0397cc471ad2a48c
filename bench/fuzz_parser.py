"""Coverage-guided fuzzing of the XML stream parser with atheris (run by hand, not by the test suite).

    .venv/bin/pip install atheris
    .venv/bin/python bench/fuzz_parser.py -max_total_time=300 [corpus_dir]

The first input byte picks the mode (stream, WebSocket, BOSH) and the chunk size; the rest is fed in chunks.
Any exception other than RemoteProtocolError is a crash, and so is an event that is not a ParserEvent.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports():
    from jaybird.errors import RemoteProtocolError
    from jaybird.xml.parser import ElementReceived, StreamClosed, StreamOpened, XMLStreamParser

ROOTS = ("{http://etherx.jabber.org/streams}stream", None, "{http://jabber.org/protocol/httpbind}body")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, body = data[0], data[1:]
    parser = XMLStreamParser(ROOTS[selector % 3], max_stanza_bytes=4096, max_depth=8, max_attrs=8, max_children=16)
    size = 1 + (selector >> 2)
    try:
        for offset in range(0, len(body), size):
            for event in parser.feed(body[offset : offset + size]):
                if not isinstance(event, StreamOpened | ElementReceived | StreamClosed):
                    raise AssertionError(f"unexpected event {event!r}")
    except RemoteProtocolError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

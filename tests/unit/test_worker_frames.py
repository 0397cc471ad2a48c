"""The frames worker processes exchange (jaybird.server.workers.frames) and the ``workers`` key."""

import struct

import pytest

from jaybird.errors import ConfigError
from jaybird.server.config import ConfigOverrides, parse_config
from jaybird.server.workers.frames import MAX_FRAME_BYTES, Frame, FrameDecoder, FrameError, FrameType, encode_frame

STANZA = b'<message xmlns="jabber:client" to="a@localhost/r"><body>line one\nline two</body></message>'


def test_a_frame_is_length_type_and_payload() -> None:
    data = encode_frame(FrameType.HELLO, {"index": 1, "workers": 2})
    length, code = struct.unpack(">IB", data[:5])
    assert code == FrameType.HELLO
    assert length == len(data) - 5
    assert data[5:] == b'{"index":1,"workers":2}\n'


def test_frames_round_trip_with_newlines_in_header_and_body() -> None:
    header = {"jid": "a@localhost/r", "presence": "<presence>\n<status>é</status></presence>"}
    frames = FrameDecoder().feed(encode_frame(FrameType.STANZA, header, STANZA) + encode_frame(FrameType.BYE))
    assert frames == [Frame(FrameType.STANZA, header, STANZA), Frame(FrameType.BYE, {}, b"")]


def test_frames_arrive_in_pieces() -> None:
    data = b"".join(encode_frame(FrameType.SESSION_DOWN, {"sid": f"0.{i}"}) for i in range(3))
    decoder = FrameDecoder()
    got: list[Frame] = []
    for i in range(len(data)):
        got += decoder.feed(data[i : i + 1])
    assert [f.header["sid"] for f in got] == ["0.0", "0.1", "0.2"]
    assert decoder.pending == 0


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (struct.pack(">IB", 3, 99) + b"{}\n", "unknown frame type 99"),
        (struct.pack(">IB", 2, FrameType.BYE) + b"{}", "without a header"),
        (struct.pack(">IB", 4, FrameType.BYE) + b"[1]\n", "not an object"),
        (struct.pack(">IB", 4, FrameType.BYE) + b"{x}\n", "malformed header"),
        (struct.pack(">IB", MAX_FRAME_BYTES + 1, FrameType.STANZA), "over the limit"),
    ],
)
def test_broken_frames_are_refused(data: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        FrameDecoder().feed(data)


def test_workers_default_to_one_and_take_a_count() -> None:
    assert parse_config("").workers == 1
    assert parse_config("workers = 4").workers == 4
    assert parse_config("", overrides=ConfigOverrides(workers=3)).workers == 3


def test_workers_below_one_are_refused() -> None:
    with pytest.raises(ConfigError, match="workers"):
        parse_config("workers = 0", source="config.toml")
    with pytest.raises(ConfigError, match="command line: --workers"):
        parse_config("", overrides=ConfigOverrides(workers=0))


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ('[storage]\nurl = "memory://"', "storage.url is memory://"),
        ("[listeners.s2s]\nenabled = true", "listeners.s2s.enabled"),
        ("[listeners.http]\nenabled = true", "listeners.http.enabled"),
        ('[[listeners.components]]\ndomain = "gw.localhost"\nsecret = "s"', "listeners.components"),
    ],
)
def test_workers_refuse_what_cannot_be_shared(toml: str, named: str) -> None:
    parse_config(toml)  # fine with one process
    with pytest.raises(ConfigError, match=f"config.toml: workers: workers = 2 .*{named}"):
        parse_config(f"workers = 2\n{toml}", source="config.toml")

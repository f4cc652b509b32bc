"""The hand-built close frame the reserved-close-code profile puts on the wire."""

from __future__ import annotations

import struct

import pytest
from websockets.exceptions import ProtocolError
from websockets.frames import Close

from uvs_analysis.testbed.protocol import close_frame


@pytest.mark.parametrize("code", [1005, 1006, 1000])
def test_close_frame_bytes(code: int) -> None:
    """FIN+close opcode, unmasked length, then the code big-endian and the reason."""
    frame = close_frame(code, "Database: down")
    assert frame[0] == 0x88 and frame[1] == 2 + len("Database: down")
    assert struct.unpack("!H", frame[2:4])[0] == code and frame[4:] == b"Database: down"


def test_websockets_rejects_what_the_frame_carries() -> None:
    """The reserved codes are exactly what a websockets peer refuses to parse."""
    assert Close.parse(close_frame(1000, "ok")[2:]).code == 1000
    for code in (1005, 1006):
        with pytest.raises(ProtocolError):
            Close.parse(close_frame(code)[2:])


def test_reason_is_cut_to_fit_a_control_frame() -> None:
    """Control frames carry at most 125 bytes of payload."""
    assert len(close_frame(1006, "x" * 500)) == 2 + 125

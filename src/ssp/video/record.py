"""The canonical video frame and its Kafka record: raw RGB behind a small fixed header, keyed by video id.

A record's value is ``HEADER`` (24 bytes, big-endian) then ``height * width * 3`` bytes of RGB, row by
row. The header: the magic ``b"SSPF"``, the format version (1), the channels (3), two spare bytes,
the frame's index in its video (uint32), its stream time in milliseconds since the Unix epoch (int64),
its width and height (uint16 each). The key is the video id (UTF-8), so every frame of a video lands
in one partition, in order. No JPEG, no base64, no JSON: a 426x226 frame is 288,852 bytes, decoded with
no copy of its pixels.

>>> pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
>>> value = encode_frame(Frame("clip", 7, 1_700_000_000_123, pixels))
>>> len(value), value[:6]
(42, b'SSPF\\x01\\x03')
>>> frame = decode_frame(value, b"clip")
>>> frame.video, frame.index, frame.ts_ms, frame.width, frame.height, bool((frame.pixels == pixels).all())
('clip', 7, 1700000000123, 3, 2, True)
>>> for bad in (None, b"JPEG" + bytes(40), value[:30], value + b"x"):
...     try:
...         decode_frame(bad, b"clip")
...     except FrameParseError as err:
...         print(err.reason, "|", err)
empty | the record has no value
not_a_frame | the record does not start with the frame header b'SSPF' (got b'JPEG')
wrong_size | frame 7 of 3x2 needs 18 bytes of RGB, the record has 6
wrong_size | frame 7 of 3x2 needs 18 bytes of RGB, the record has 19
>>> decode_frame(value, None).video
Traceback (most recent call last):
...
ssp.video.record.FrameParseError: the frame record has no key (the video id)
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from ssp.errors import SspError

__all__ = ["HEADER", "MAGIC", "Frame", "FrameParseError", "decode_frame", "encode_frame", "frame_bytes"]

MAGIC = b"SSPF"
FORMAT_VERSION = 1
HEADER = struct.Struct(">4sBB2xIqHH")  # magic, version, channels, spare, index, ts_ms, width, height
_MAX_VIDEO_ID = 200


class FrameParseError(SspError, ValueError):
    """A record that is not a frame; ``reason`` is the dead-letter table's code for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Frame(NamedTuple):
    """One canonical frame: its video's id, its index there, its stream time (ms since the epoch) and its
    ``(height, width, 3)`` uint8 RGB pixels."""

    video: str
    index: int
    ts_ms: int
    pixels: np.ndarray

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def frame_bytes(width: int, height: int) -> int:
    """The size of a ``width`` x ``height`` frame's record value.

    >>> frame_bytes(426, 226)
    288852
    """
    return HEADER.size + width * height * 3


def encode_frame(frame: Frame) -> bytes:
    """A frame's record value (see the module docstring)."""
    pixels = np.asarray(frame.pixels)
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"frame {frame.index}: pixels must be an (height, width, 3) uint8 array, got "
                         f"{pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    if not (0 < width < 65536 and 0 < height < 65536):
        raise ValueError(f"frame {frame.index}: {width}x{height} is not a size the header holds (1 to 65535)")
    header = HEADER.pack(MAGIC, FORMAT_VERSION, 3, int(frame.index), int(frame.ts_ms), width, height)
    return header + np.ascontiguousarray(pixels).tobytes()


def decode_frame(value: bytes | None, key: bytes | None) -> Frame:
    """The :class:`Frame` in a record, or :class:`FrameParseError` with the reason."""
    if not value:
        raise FrameParseError("empty", "the record has no value")
    if value[:4] != MAGIC:
        raise FrameParseError("not_a_frame", f"the record does not start with the frame header {MAGIC!r} "
                                             f"(got {bytes(value[:4])!r})")
    if len(value) < HEADER.size:
        raise FrameParseError("wrong_size", f"the record has {len(value)} bytes, less than the {HEADER.size}-byte "
                                            "frame header")
    _, version, channels, index, ts_ms, width, height = HEADER.unpack_from(value)
    if version != FORMAT_VERSION or channels != 3:
        raise FrameParseError("wrong_format", f"frame {index}: format version {version} with {channels} channels; "
                                              f"this reader takes version {FORMAT_VERSION} RGB (3)")
    need, have = width * height * 3, len(value) - HEADER.size
    if need == 0 or have != need:
        raise FrameParseError("wrong_size", f"frame {index} of {width}x{height} needs {need} bytes of RGB, the "
                                            f"record has {have}")
    if not key:
        raise FrameParseError("no_key", "the frame record has no key (the video id)")
    try:
        video = bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        raise FrameParseError("bad_key", f"frame {index}: the key (the video id) is not UTF-8") from None
    if len(video) > _MAX_VIDEO_ID or any(ord(ch) < 32 for ch in video):
        raise FrameParseError("bad_key", f"frame {index}: the video id must be 1 to {_MAX_VIDEO_ID} printable "
                                         "characters")
    pixels = np.frombuffer(value, dtype=np.uint8, count=need, offset=HEADER.size).reshape(height, width, 3)
    return Frame(video, int(index), int(ts_ms), pixels)

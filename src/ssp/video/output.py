"""The quantised frames as files: each frame a PNG (palette mode, so a frame of K colours is about a byte a
pixel before compression), and the output video assembled from the stored frames in frame order.

Every file is written to a temporary name beside it and renamed into place, so a reader (or a job killed
mid-write and restarted) never sees half a file, and writing the same frame twice leaves one file: a
frame's PNG is named by its index, and the video is rebuilt whole from the frames table, which holds each
frame once.

>>> labels = np.array([[0, 1], [1, 1]], dtype=np.int64)
>>> png = encode_png(labels, np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8))
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", decode_png(png)[0].tolist()
(True, [[255, 0, 0], [0, 0, 255]])
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ssp.errors import SspError

__all__ = ["OutputError", "decode_png", "encode_png", "safe_name", "write_png", "write_video"]


class OutputError(SspError, RuntimeError):
    """An output file that cannot be written; the message names it and why."""


def safe_name(text: str) -> str:
    """A file-name-safe form of a video id or job name.

    >>> safe_name("palette:video_frames/a b")
    'palette_video_frames_a_b'
    """
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text) or "_"


def encode_png(labels: np.ndarray, rgb: np.ndarray) -> bytes:
    """A frame given as colour indices ``(h, w)`` and its palette ``(K, 3)`` uint8 as a PNG: palette mode
    for at most 256 colours, RGB beyond. Fast compression (level 1): these are stored per frame."""
    from PIL import Image

    buffer = io.BytesIO()
    if len(rgb) <= 256:
        image = Image.fromarray(labels.astype(np.uint8), mode="P")
        image.putpalette(np.asarray(rgb, dtype=np.uint8).ravel().tolist())
    else:
        image = Image.fromarray(np.asarray(rgb, dtype=np.uint8)[labels], mode="RGB")
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(png: bytes) -> np.ndarray:
    """A stored frame's PNG as ``(h, w, 3)`` uint8 RGB."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def _replace(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    return path


def write_png(path: Path, png: bytes) -> Path:
    """Write ``png`` to ``path`` atomically (a temporary file renamed into place)."""
    return _replace(Path(path), lambda partial: partial.write_bytes(png))


def write_video(path: Path, frames: Iterable[tuple[int, bytes]], fps: float) -> int:
    """Assemble an H.264 MP4 (yuv420p) at ``fps`` from ``(frame_index, png)`` in frame order, with the
    ffmpeg that imageio-ffmpeg ships; written to a temporary file and renamed. Returns the frames written."""
    import imageio_ffmpeg

    written = 0

    def write(partial: Path) -> None:
        nonlocal written
        writer = None
        try:
            for _, png in frames:
                image = decode_png(png)
                if writer is None:
                    height, width = image.shape[:2]
                    writer = imageio_ffmpeg.write_frames(
                        str(partial), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", quality=8,
                        macro_block_size=2, ffmpeg_log_level="error", output_params=["-f", "mp4"])
                    writer.send(None)
                writer.send(np.ascontiguousarray(image).tobytes())
                written += 1
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise OSError("no frames to write")

    _replace(Path(path), write)
    return written

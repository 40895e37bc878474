"""Video frames for the colour-clustering use case: a video file, or a generated test video that needs
nothing from outside.

Two generated scenes, both seeded and deterministic (frame ``i`` is the same in any process, however
many frames are asked for), drawn in numpy:

* ``"landscape"``: a slow pan and zoom across a drawn landscape (a sky gradient, a sun, two mountain
  ranges, hills, a lake and houses) with a little sensor noise: smooth gradients and flat areas, the
  kind of frame colour quantisation is for;
* ``"palette"``: :data:`KNOWN_PALETTE`'s 8 flat colours in blocks and discs panning slowly, plus
  Gaussian noise (``noise`` per channel): frames whose true colours are known, for the tests.

A file is read with the ffmpeg that ``imageio-ffmpeg`` ships, as RGB frames at its own size.
:func:`frame_records` turns frames into Kafka records (``(key, value)`` bytes; see
:mod:`ssp.video.record`) stamped with stream time ``start + index / fps``.

>>> frames = list(generated_frames(3, width=32, height=18, scene="palette", seed=1))
>>> [(i, f.shape, f.dtype.name) for i, f in frames][:2]
[(0, (18, 32, 3), 'uint8'), (1, (18, 32, 3), 'uint8')]
>>> bool((next(generated_frames(1, width=32, height=18, scene="palette", seed=1))[1] == frames[0][1]).all())
True
>>> key, value = next(frame_records("demo", frames, fps=30))
>>> key, len(value)
(b'demo', 1752)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ssp.errors import SspError
from ssp.video.record import Frame, encode_frame

__all__ = ["KNOWN_PALETTE", "SCENES", "VideoSourceError", "file_frames", "frame_records", "generated_frame",
           "generated_frames",
           "palette_frame", "landscape_frame", "video_frames"]

SCENES = ("landscape", "palette")
DEFAULT_START = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)
# the palette scene's colours, far apart (at least 110 apart in RGB)
KNOWN_PALETTE = np.array([
    [20, 20, 30], [235, 235, 225], [210, 40, 40], [40, 170, 60],
    [40, 60, 200], [235, 200, 40], [40, 190, 200], [170, 50, 180],
], dtype=np.uint8)


class VideoSourceError(SspError, ValueError):
    """A video that cannot be read or generated; the message names the input and the problem."""


def _check_size(width: int, height: int) -> None:
    if not (isinstance(width, int) and isinstance(height, int) and 8 <= width <= 8192 and 8 <= height <= 8192):
        raise VideoSourceError(f"a generated video's size must be 8 to 8192 pixels a side, got {width}x{height}")


def _view(canvas: np.ndarray, width: int, height: int, t: float) -> np.ndarray:
    """The ``width`` x ``height`` window at time ``t`` (frames) of a slow pan right and a zoom in and out,
    sampled from ``canvas`` (nearest pixel; the canvas wraps around horizontally)."""
    canvas_h, canvas_w = canvas.shape[:2]
    zoom = 1.0 + 0.25 * (1 - np.cos(2 * np.pi * t / 240.0)) / 2  # 1 to 1.25 and back every 240 frames
    span_w, span_h = canvas_h * (width / height) / zoom, canvas_h / zoom
    x0 = (t * 1.5) % canvas_w
    y0 = (canvas_h - span_h) / 2
    columns = (x0 + np.arange(width) * (span_w / width)).astype(np.int64) % canvas_w
    rows = np.minimum((y0 + np.arange(height) * (span_h / height)).astype(np.int64), canvas_h - 1)
    return canvas[rows[:, None], columns[None, :]]


def _noisy(image: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    if noise <= 0:
        return image.copy()
    return np.clip(image + rng.normal(0.0, noise, image.shape), 0, 255).astype(np.uint8)


def _landscape_canvas(height: int) -> np.ndarray:
    """The landscape, ``height`` pixels high and 3 heights wide (so the pan wraps after a long while)."""
    width = 3 * height
    y = np.arange(height)[:, None] / height
    x = np.arange(width)[None, :] / width
    sky = np.array([70, 120, 200]) + (np.array([200, 220, 240]) - np.array([70, 120, 200])) * y[..., None]
    image = np.broadcast_to(sky, (height, width, 3)).astype(np.float64).copy()
    sun = (x * 3 - 0.7) ** 2 + ((y - 0.2) * 1.0) ** 2 < 0.012
    image[sun] = (250, 215, 90)
    far = 0.45 + 0.08 * np.sin(2 * np.pi * x * 5) + 0.05 * np.sin(2 * np.pi * x * 13 + 1)
    image[(y > far) & (y <= 1)] = (120, 110, 150)
    near = 0.6 + 0.06 * np.sin(2 * np.pi * x * 3 + 2) + 0.03 * np.sin(2 * np.pi * x * 17)
    hills = y > near
    image[hills] = (np.array([60, 140, 60]) * (0.8 + 0.4 * (y - near)).clip(0.8, 1.2)[..., None])[hills]
    lake = (y > 0.82) & (((x * 4) % 1) < 0.45)
    image[lake] = (50, 100, 170)
    for left in np.linspace(0.05, 0.95, 7):  # houses: a wall and a roof
        wall = (np.abs(x - left) < 0.012) & (y > near + 0.02) & (y < near + 0.09)
        roof = (np.abs(x - left) < 0.016 - (near + 0.02 - y).clip(0) * 0.2) & (y <= near + 0.02) & (y > near - 0.03)
        image[wall], image[roof] = (235, 225, 200), (170, 50, 40)
    return image.clip(0, 255).astype(np.uint8)


def _palette_canvas(height: int, seed: int) -> np.ndarray:
    """Blocks of :data:`KNOWN_PALETTE`'s colours with discs on them, 3 heights wide."""
    rng = np.random.default_rng([seed, 8])
    width = 3 * height
    image = np.empty((height, width, 3), dtype=np.uint8)
    edges = np.linspace(0, width, 9).astype(int)
    for colour, (left, right) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        image[:, left:right] = KNOWN_PALETTE[colour]
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(12):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.06, 0.14) * height
        image[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = KNOWN_PALETTE[rng.integers(len(KNOWN_PALETTE))]
    return image


def landscape_frame(index: int, width: int = 426, height: int = 226, *, seed: int = 0, noise: float = 2.0,
                    canvas: np.ndarray | None = None) -> np.ndarray:
    """Frame ``index`` of the landscape scene."""
    canvas = _landscape_canvas(2 * height) if canvas is None else canvas
    return _noisy(_view(canvas, width, height, float(index)), noise, np.random.default_rng([seed, index]))


def palette_frame(index: int, width: int = 426, height: int = 226, *, seed: int = 0, noise: float = 6.0,
                  canvas: np.ndarray | None = None) -> np.ndarray:
    """Frame ``index`` of the palette scene: :data:`KNOWN_PALETTE`'s colours plus noise."""
    canvas = _palette_canvas(2 * height, seed) if canvas is None else canvas
    return _noisy(_view(canvas, width, height, float(index)), noise, np.random.default_rng([seed, index]))


def generated_frame(index: int, *, width: int = 426, height: int = 226, scene: str = "landscape",
                    seed: int = 0) -> np.ndarray:
    """Frame ``index`` of a generated scene on its own (the same as :func:`generated_frames` gives).

    >>> a = generated_frame(4, width=32, height=18, scene="palette", seed=1)
    >>> bool((a == list(generated_frames(5, width=32, height=18, scene="palette", seed=1))[4][1]).all())
    True
    """
    return next(generated_frames(1, width=width, height=height, scene=scene, seed=seed, first=index))[1]


def generated_frames(frames: int | None, *, width: int = 426, height: int = 226, scene: str = "landscape",
                     seed: int = 0, noise: float | None = None, static: bool = False,
                     first: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, frame)`` for ``frames`` frames (None: without end) of a generated scene, from index ``first``.
    ``static``: the camera does not move (only the noise changes from frame to frame)."""
    if scene not in SCENES:
        raise VideoSourceError(f"unknown scene {scene!r} (known: {', '.join(SCENES)})")
    _check_size(width, height)
    draw = landscape_frame if scene == "landscape" else palette_frame
    canvas = _landscape_canvas(2 * height) if scene == "landscape" else _palette_canvas(2 * height, seed)
    extra = {} if noise is None else {"noise": float(noise)}
    index = first
    while frames is None or index < first + frames:
        view = draw(0 if static else index, width, height, seed=seed, canvas=canvas, **extra)
        if static and index:
            view = _noisy(_view(canvas, width, height, 0.0), extra.get("noise", 6.0 if scene == "palette" else 2.0),
                          np.random.default_rng([seed, index]))
        yield index, view
        index += 1


def file_frames(path: str | Path, *, loop: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, frame)`` for every frame of a video file (again and again with ``loop``, the index going on)."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoSourceError(f"--path {path}: no such video file")
    index = 0
    while True:
        try:
            reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration) as err:
            raise VideoSourceError(f"--path {path}: not a video ffmpeg can read ({str(err).strip()[:200]})") from None
        width, height = meta["size"]
        count = 0
        for data in reader:
            yield index, np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)
            index, count = index + 1, count + 1
        if not loop or count == 0:
            return


def video_frames(path: str | None, frames: int | None, *, loop: bool = False, **generated) -> Iterator[
        tuple[int, np.ndarray]]:
    """A file's frames when ``path`` is given, else the generated scene's (``generated``: its options)."""
    if path:
        reader = file_frames(path, loop=loop)
        return reader if frames is None else (item for item, _ in zip(reader, range(frames), strict=False))
    return generated_frames(frames, **generated)


def frame_records(video: str, frames: Iterable[tuple[int, np.ndarray]], *, fps: float,
                  start: datetime = DEFAULT_START) -> Iterator[tuple[bytes, bytes]]:
    """Kafka ``(key, value)`` records of ``frames``: key the video id, value the frame record, stamped with
    stream time ``start + index / fps``."""
    if not video or len(video) > 200:
        raise VideoSourceError(f"the video id must be 1 to 200 characters, got {video!r}")
    if not fps > 0:
        raise VideoSourceError(f"--fps must be above 0, got {fps}")
    key = video.encode("utf-8")
    start_ms = int(start.timestamp() * 1000)
    for index, pixels in frames:
        yield key, encode_frame(Frame(video, index, start_ms + int(round(index * 1000 / fps)), pixels))

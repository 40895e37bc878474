"""Colour quantisation of video frames: a palette found by weighted DP-means on a lightweight coreset of
the frame's pixels, warm-started from the previous frame's palette, and every pixel repainted with its
nearest palette colour.

One frame (``(h, w, 3)`` uint8 RGB) goes through three steps, all vectorised numpy:

1. :func:`~ssp.clustering.coreset.lightweight_coreset`: ``coreset_size`` pixels (default 1,000 of the
   96,276 of a 426x226 frame) with weights that add up to about the frame's pixel count, seeded by
   ``(seed, frame index)`` so a replayed frame gets the same coreset;
2. :meth:`ssp.clustering.dpmeans.DPMeans.fit` on the coreset with its weights, its points farthest from
   the frame's mean colour first (:meth:`~ssp.clustering.coreset.Coreset.farthest_first`, so the births
   open the extreme colours first): ``lambda`` is a squared RGB distance (a pixel farther than
   ``sqrt(lambda)`` from every colour opens a new one; several per pass), and the first pass starts from the previous frame's colours, so a static scene keeps its
   palette instead of flickering (the first frame starts from the coreset's mean);
3. the repaint (:func:`repaint`): each pixel's nearest colour by squared distance, exact
   (:func:`nearest_colours`); a colour no pixel is nearest to is dropped, and each colour's share is its
   fraction of the frame's pixels. The next frame starts from the fit's colours.

Only the fit needs the frame before it: :meth:`FrameQuantiser.quantise_frames` draws the coresets of the
frames to come and repaints those fitted on other threads meanwhile (numpy lets go of the GIL), with
the same results as :meth:`FrameQuantiser.quantise` one frame after another.

``lambda`` can be given as a number of colours instead (``colours=K``): it is derived once, from the
first frame's coreset, by the farthest-first heuristic (:func:`~ssp.clustering.dpmeans.lambda_from_k`),
and kept for the rest of the video. The quantiser's state (lambda and the last palette) is plain JSON,
so a stream job keeps it per video.

Two flat colours, with lambda 100^2: the first frame opens both colours; the second starts from them:

>>> frame = np.zeros((4, 6, 3), dtype=np.uint8); frame[:, 3:] = (200, 40, 40)
>>> quantiser = FrameQuantiser(lambda_=100.0**2, coreset_size=50, seed=3)
>>> first = quantiser.quantise(frame, index=0)
>>> first.n_colours, first.palette.rgb().tolist(), first.palette.shares.tolist()
(2, [[200, 40, 40], [0, 0, 0]], [0.5, 0.5])
>>> bool((first.image == frame).all()), first.labels[0].tolist()
(True, [1, 1, 1, 0, 0, 0])
>>> twin = FrameQuantiser.from_state(quantiser.to_state())
>>> twin.quantise(frame, index=1).palette.rgb().tolist()
[[200, 40, 40], [0, 0, 0]]
>>> FrameQuantiser(lambda_=1.0, colours=3)
Traceback (most recent call last):
...
ValueError: give lambda_ (a squared RGB distance) or colours (a number of colours to derive it from), not both
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ssp.clustering.coreset import Coreset, lightweight_coreset
from ssp.clustering.dpmeans import DPMeans, lambda_from_k

__all__ = ["FrameQuantiser", "Palette", "QuantisedFrame", "frame_pixels", "nearest_colours", "repaint"]

STATE_MODEL = "palette"
STATE_VERSION = 1


def frame_pixels(frame: Any) -> np.ndarray:
    """A frame as an ``(h, w, 3)`` uint8 array, or a ValueError naming what is wrong."""
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[2] != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"a frame must be an (height, width, 3) RGB array, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"a frame must hold uint8 RGB values, got {array.dtype}")
    return array


def nearest_colours(pixels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Each pixel's (``(n, 3)``, any numeric type) nearest colour among ``colours`` ``(K, 3)``, by squared
    Euclidean distance, lowest index on a tie: ``argmin_k |c_k|^2 - 2 x.c_k`` (``|x|^2`` is the same for
    every k), in float64, so exact to rounding (about 1e-10 of an RGB squared distance, which is at most
    195,075): the same colour as the differences ``|x - c_k|^2`` give, even for two colours a thousandth
    apart (float32 would swap such near ties). One pass per colour over the pixels' three channels with a
    running minimum: no ``(n, K)`` matrix, and no BLAS call, whose threads lose 5x on a busy machine for an
    inner dimension of 3.

    >>> nearest_colours(np.array([[0, 0, 0], [250, 10, 10], [120, 120, 120]]),
    ...                 np.array([[255.0, 0, 0], [0, 0, 0]])).tolist()
    [1, 0, 1]
    """
    centres = np.asarray(colours, dtype=np.float64)
    if centres.ndim != 2 or centres.shape[1] != 3 or not len(centres):
        raise ValueError(f"colours must be a non-empty (K, 3) array, got shape {centres.shape}")
    norms = np.einsum("kd,kd->k", centres, centres)
    channels = [np.asarray(pixels[:, axis], dtype=np.float64) for axis in range(3)]
    best = np.full(len(pixels), np.inf)
    out = np.zeros(len(pixels), dtype=np.int64)
    distance, term = np.empty_like(best), np.empty_like(best)
    closer = np.empty(len(pixels), dtype=bool)
    for k, (red, green, blue) in enumerate(-2.0 * centres):
        np.multiply(channels[0], red, out=distance)
        distance += np.multiply(channels[1], green, out=term)
        distance += np.multiply(channels[2], blue, out=term)
        distance += norms[k]
        np.less(distance, best, out=closer)  # strictly: on a tie the lower index stays
        np.minimum(distance, best, out=best)
        np.putmask(out, closer, k)
    return out


def repaint(pixels: np.ndarray, colours: np.ndarray) -> tuple[Palette, np.ndarray]:
    """Step 3: each pixel of the frame ``pixels`` ``(h, w, 3)`` its nearest of ``colours`` (:func:`nearest_colours`):
    the frame's :class:`Palette` (a colour no pixel is nearest to dropped, each colour's share of the pixels)
    and each pixel's colour index ``(h, w)`` in it.

    >>> palette, labels = repaint(np.array([[[0, 0, 0], [250, 0, 0]]], dtype=np.uint8),
    ...                           np.array([[255.0, 0, 0], [128.0, 128, 128], [0, 0, 0]]))
    >>> palette.colours.tolist(), palette.shares.tolist(), labels.tolist()
    ([[255.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [0.5, 0.5], [[1, 0]])
    """
    labels = nearest_colours(pixels.reshape(-1, 3), colours)
    counts = np.bincount(labels, minlength=len(colours))
    if (counts == 0).any():  # a colour no pixel is nearest to: gone, and the labels renumbered
        kept = counts > 0
        colours, counts = colours[kept], counts[kept]
        labels = (np.cumsum(kept) - 1)[labels]
    return Palette(colours, counts / counts.sum()), labels.reshape(pixels.shape[:2])


@dataclass(frozen=True, eq=False)
class Palette:
    """A frame's colours ``(K, 3)`` (float RGB, the DP-means centres) and their pixel shares ``(K,)``."""

    colours: np.ndarray
    shares: np.ndarray

    def __len__(self) -> int:
        return len(self.colours)

    def rgb(self) -> np.ndarray:
        """The colours as the uint8 RGB the repainted frame uses (rounded, clipped to 0..255)."""
        return np.clip(np.rint(self.colours), 0, 255).astype(np.uint8)


@dataclass(frozen=True, eq=False)
class QuantisedFrame:
    """One frame's palette, each pixel's colour index ``(h, w)``, the lambda it was fitted with, the coreset
    size and the seconds coreset + fit + repaint took; :attr:`image` is the repainted frame."""

    index: int
    palette: Palette
    labels: np.ndarray
    lambda_: float
    coreset_size: int
    seconds: float

    @property
    def n_colours(self) -> int:
        return len(self.palette)

    @cached_property
    def image(self) -> np.ndarray:
        """The repainted frame ``(h, w, 3)`` uint8: each pixel its colour's RGB (made when first asked for:
        the stream job stores the labels and the palette as a palette PNG and never needs it)."""
        return self.palette.rgb()[self.labels]

    def line(self) -> str:
        """The original project's log line, with the time it took."""
        return f"frame {self.index}: Number of colors detected: {self.n_colours} ({self.seconds:.3f} s)"


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class FrameQuantiser:
    """The palette of one video's frames, frame after frame; see the module docstring.

    ``lambda_``: the squared RGB distance beyond which a pixel opens a colour, or ``colours``: about how
    many colours (lambda derived from the first frame). ``coreset_size``: pixels in each frame's coreset.
    ``seed``: with the frame index, seeds each frame's coreset. ``max_iter`` bounds DP-means' passes.
    """

    def __init__(self, lambda_: float | None = None, *, colours: int | None = None, coreset_size: int = 1000,
                 max_iter: int = 100, seed: int = 0) -> None:
        if (lambda_ is None) == (colours is None):
            raise ValueError("give lambda_ (a squared RGB distance) or colours (a number of colours to derive it "
                             "from), " + ("not both" if lambda_ is not None else "one of them"))
        self.lambda_ = None if lambda_ is None else _positive("lambda_", lambda_)
        self.colours = None if colours is None else _count("colours", colours, 1)
        self.coreset_size = _count("coreset_size", coreset_size, 1)
        self.max_iter = _count("max_iter", max_iter, 1)
        self.seed = _count("seed", seed, 0)
        self.palette: np.ndarray | None = None  # the last frame's colours, the next frame's start
        self.frames = 0
        self.last_index: int | None = None

    def __repr__(self) -> str:
        scale = f"lambda_={self.lambda_:g}" if self.lambda_ is not None else f"colours={self.colours}"
        return f"FrameQuantiser({scale}, coreset_size={self.coreset_size}, frames={self.frames})"

    def quantise(self, frame: Any, index: int | None = None) -> QuantisedFrame:
        """Fit the palette of ``frame`` (warm-started from the previous one) and repaint the frame with it.

        ``index``: the frame's index in its video (default: the frames seen so far); with the seed it
        seeds the coreset, so the same frame at the same index always gets the same palette.
        """
        pixels = frame_pixels(frame)
        index = self.frames if index is None else _count("index", index, 0)
        start = time.perf_counter()
        colours = self.fit(self.coreset(pixels, index), index)
        palette, labels = repaint(pixels, colours)
        return QuantisedFrame(index, palette, labels, float(self.lambda_), self.coreset_size,
                              time.perf_counter() - start)

    def quantise_frames(self, frames: Iterable[tuple[int, Any]], *, threads: int = 2,
                        then: Callable[[QuantisedFrame], Any] | None = None) -> Iterator[Any]:
        """:meth:`quantise` of each ``(index, frame)`` in turn, the same results, with the steps that need no
        state run ahead and behind on ``threads`` threads: the coresets of the frames to come and the
        repaints of those fitted, while this thread fits one frame after another (the fit is the only step
        that needs the frame before). A frame's ``seconds`` are its three steps' times added up. ``then``:
        run on each result in the repaint's thread (e.g. encode it), and what it returns is yielded instead.

        >>> frames = [(i, np.full((2, 3, 3), 40 * i, dtype=np.uint8)) for i in range(4)]
        >>> one, two = FrameQuantiser(lambda_=10.0), FrameQuantiser(lambda_=10.0)
        >>> piped = [r.palette.rgb().tolist() for r in one.quantise_frames(frames)]
        >>> piped == [two.quantise(frame, i).palette.rgb().tolist() for i, frame in frames], piped[3]
        (True, [[120, 120, 120]])
        """
        from concurrent.futures import ThreadPoolExecutor

        def core(index: int, pixels: np.ndarray) -> tuple[Coreset, float]:
            start = time.perf_counter()
            return self.coreset(pixels, index), time.perf_counter() - start

        def paint(index: int, pixels: np.ndarray, colours: np.ndarray, lambda_: float, seconds: float) -> Any:
            start = time.perf_counter()
            palette, labels = repaint(pixels, colours)
            result = QuantisedFrame(index, palette, labels, lambda_, self.coreset_size,
                                    seconds + time.perf_counter() - start)
            return result if then is None else then(result)

        checked = [(_count("index", index, 0), frame_pixels(frame)) for index, frame in frames]
        with ThreadPoolExecutor(max_workers=_count("threads", threads, 1)) as pool:
            cores = [pool.submit(core, index, pixels) for index, pixels in checked]  # all ahead: they are small
            painted = []
            for (index, pixels), future in zip(checked, cores, strict=True):
                coreset, core_seconds = future.result()
                start = time.perf_counter()
                colours = self.fit(coreset, index)
                painted.append(pool.submit(paint, index, pixels, colours, float(self.lambda_),
                                           core_seconds + time.perf_counter() - start))
            for future in painted:
                yield future.result()

    # ------------------------------------------------------------------ the three steps
    def coreset(self, pixels: np.ndarray, index: int) -> Coreset:
        """Step 1: the frame's coreset, seeded by ``(seed, index)``, farthest from the mean colour first. No
        state: any frame's can be drawn at any time, in any thread."""
        core = lightweight_coreset(pixels.reshape(-1, 3), self.coreset_size,
                                   seed=np.random.default_rng([self.seed, index]))
        return core.farthest_first()

    def fit(self, core: Coreset, index: int) -> np.ndarray:
        """Step 2, the one with state: weighted DP-means on ``core``, its first pass from the previous frame's
        colours (lambda derived from this coreset first, with ``colours=K``); its colours ``(K, 3)`` are
        returned and become the next frame's start."""
        if self.lambda_ is None:
            distinct = len(np.unique(core.points, axis=0))
            self.lambda_ = lambda_from_k(core.points, min(self.colours, max(distinct - 1, 1)), seed=self.seed) \
                if distinct > 1 else 1.0
        model = DPMeans(lambda_=self.lambda_, max_iter=self.max_iter, seed=self.seed)
        model.fit(core.points, core.weights, init=self.palette)
        self.palette, self.frames, self.last_index = model.centres, self.frames + 1, index
        return model.centres

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """The quantiser as JSON-able plain values; :meth:`from_state` restores it exactly."""
        return {"model": STATE_MODEL, "state_version": STATE_VERSION, "lambda": self.lambda_,
                "colours": self.colours, "coreset_size": self.coreset_size, "max_iter": self.max_iter,
                "seed": self.seed, "frames": self.frames, "last_index": self.last_index,
                "palette": None if self.palette is None else self.palette.tolist()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FrameQuantiser:
        """The quantiser :meth:`to_state` described; a ValueError names what is missing or wrong."""
        if not isinstance(state, Mapping) or state.get("model") != STATE_MODEL \
                or state.get("state_version") != STATE_VERSION:
            raise ValueError(f"not a {STATE_MODEL} state of version {STATE_VERSION}")
        keys = ("lambda", "colours", "coreset_size", "max_iter", "seed", "frames", "last_index", "palette")
        missing = [key for key in keys if key not in state]
        if missing:
            raise ValueError(f"palette state lacks {', '.join(missing)}")
        scale = {"colours": state["colours"]} if state["colours"] is not None else {"lambda_": state["lambda"]}
        quantiser = cls(**scale, coreset_size=state["coreset_size"], max_iter=state["max_iter"], seed=state["seed"])
        if state["lambda"] is not None:
            quantiser.lambda_ = _positive("lambda", state["lambda"])
        quantiser.frames = _count("frames", state["frames"], 0)
        quantiser.last_index = None if state["last_index"] is None else _count("last_index", state["last_index"], 0)
        if state["palette"] is not None:
            palette = np.asarray(state["palette"], dtype=np.float64)
            if palette.ndim != 2 or palette.shape[1] != 3 or not len(palette) or not np.isfinite(palette).all():
                raise ValueError(f"palette state: palette must be a non-empty (K, 3) list, got shape {palette.shape}")
            quantiser.palette = palette
        return quantiser

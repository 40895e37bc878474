"""``ssp video silhouette``: one stored frame's silhouettes and their diagram.

The frame's pixels come from its source again (a video file, or the generated video drawn again from its
id), its labels from the palette the stream stored for it: each pixel's nearest stored colour, the same
function the stream repainted with, so the labels are the stream's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssp.clustering.palette import nearest_colours
from ssp.errors import SspError
from ssp.sources.video import file_frames, generated_frame
from ssp.storage.postgres import make_engine
from ssp.storage.video import VideoTables, stored_palette
from ssp.video.produce import parse_generated_id
from ssp.video.silhouette import (
    SampledSilhouette,
    Silhouette,
    sampled_euclidean_silhouette,
    silhouette_png,
    squared_euclidean_silhouette,
)

__all__ = ["FrameSilhouette", "frame_silhouette", "source_frame"]


@dataclass(frozen=True)
class FrameSilhouette:
    video: str
    frame_index: int
    path: Path
    exact: Silhouette
    exact_seconds: float
    sampled: SampledSilhouette
    colours: int

    def line(self) -> str:
        return (f"frame {self.frame_index} of video {self.video} ({len(self.exact.samples):,} pixels, {self.colours} "
                f"colours): squared-Euclidean silhouette {self.exact.score:.4f} (exact, {self.exact_seconds:.3f} s); "
                f"{self.sampled.line()}; diagram in {self.path}")


def source_frame(video: str, frame_index: int, path: str | None) -> np.ndarray:
    """Frame ``frame_index`` of ``video``: from the file at ``path``, else drawn again from a generated id."""
    if path:
        for index, pixels in file_frames(path):
            if index == frame_index:
                return pixels
        raise SspError(f"--path {path} has no frame {frame_index}")
    generated = parse_generated_id(video)
    if generated is None:
        raise SspError(f"video {video!r} is not a generated video: give --path, the file its frames came from")
    scene, width, height, seed = generated
    return generated_frame(frame_index, width=width, height=height, scene=scene, seed=seed)


def frame_silhouette(database_url: str, tables: VideoTables, job: str, video: str, frame_index: int, output: Path,
                     *, path: str | None = None, sample: int = 1000, seed: int = 0) -> FrameSilhouette:
    """Both silhouettes of a stored frame and the diagram at ``output``."""
    engine = make_engine(database_url)
    try:
        colours, _ = stored_palette(engine, tables, job, video, frame_index)
    finally:
        engine.dispose()
    if not colours:
        raise SspError(f"frame {frame_index} of video {video!r} (job {job}) is not in {tables.palettes}")
    palette = np.asarray(colours, dtype=np.float64)
    pixels = source_frame(video, frame_index, path)
    points = pixels.reshape(-1, 3).astype(np.float64)
    labels = nearest_colours(points, palette)
    if len(np.unique(labels)) < 2:
        raise SspError(f"frame {frame_index} of video {video!r} has one colour: a silhouette needs two")
    start = time.perf_counter()
    exact = squared_euclidean_silhouette(points, labels)
    seconds = time.perf_counter() - start
    sampled = sampled_euclidean_silhouette(points, labels, sample=sample, seed=seed)
    rgb = np.clip(np.rint(palette[np.unique(labels)]), 0, 255).astype(np.uint8)
    silhouette_png(output, exact, rgb, sampled=sampled,
                   title=f"silhouette of frame {frame_index} of {video}: {len(rgb)} colours, squared Euclidean "
                         f"(exact) {exact.score:.4f}")
    return FrameSilhouette(video, frame_index, Path(output), exact, seconds, sampled, len(rgb))

"""``ssp produce --source video``: a video file's frames (or the generated test video's) into the frames
topic, as binary frame records keyed by video id, through one producer for the whole stream.

The frames topic is created with ``max.message.bytes`` set to ``VideoConfig.max_frame_bytes``; a topic
that exists already keeps its own limit, and a frame larger than it is refused before anything is sent,
with the sizes and what to do. The generated video's id names its settings
(``generated-landscape-426x226-seed42``), so ``ssp video silhouette`` can draw its frames again.

>>> generated_video_id("landscape", 426, 226, 42)
'generated-landscape-426x226-seed42'
>>> parse_generated_id("generated-palette-160x90-seed7")
('palette', 160, 90, 7)
>>> parse_generated_id("my-clip") is None
True
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from ssp.config import InfraConfig, TopicsConfig, VideoConfig
from ssp.errors import SspError
from ssp.video.record import frame_bytes

__all__ = ["FrameTooLargeError", "VideoProduceResult", "ensure_frames_topic", "generated_video_id",
           "parse_generated_id", "produce_video", "topic_max_message_bytes"]

_GENERATED = re.compile(r"^generated-([a-z]+)-([0-9]+)x([0-9]+)-seed([0-9]+)$")
_RECORD_OVERHEAD = 4096  # a record batch's header, the key and the record's framing, with room to spare


class FrameTooLargeError(SspError, ValueError):
    """A frame record larger than the topic takes; the message gives both sizes and the fix."""


def generated_video_id(scene: str, width: int, height: int, seed: int) -> str:
    return f"generated-{scene}-{width}x{height}-seed{seed}"


def parse_generated_id(video: str) -> tuple[str, int, int, int] | None:
    """(scene, width, height, seed) of a generated video's id, or None for another video."""
    match = _GENERATED.match(video)
    return None if match is None else (match[1], int(match[2]), int(match[3]), int(match[4]))


def topic_max_message_bytes(bootstrap: str, topic: str) -> int | None:
    """The topic's ``max.message.bytes`` (None when the broker does not say)."""
    from ssp.kafka.admin import topic_config

    value = topic_config(bootstrap, topic).get("max.message.bytes")
    return None if value is None else int(value)


def ensure_frames_topic(bootstrap: str, topic: str, partitions: int, max_bytes: int, record_bytes: int) -> int:
    """Create ``topic`` with ``max.message.bytes = max_bytes`` unless it exists; check a record of
    ``record_bytes`` fits its limit (else :class:`FrameTooLargeError`); returns the limit."""
    from ssp.kafka.admin import ensure_topic

    if record_bytes + _RECORD_OVERHEAD > max_bytes:
        raise FrameTooLargeError(f"a frame record is {record_bytes:,} bytes, more than VideoConfig.max_frame_bytes "
                                 f"({max_bytes:,}) allows: raise it (--gin-param 'VideoConfig.max_frame_bytes = N') "
                                 "or send a smaller video")
    ensure_topic(bootstrap, topic, partitions, config={"max.message.bytes": str(max_bytes)})
    limit = topic_max_message_bytes(bootstrap, topic) or max_bytes
    if record_bytes + _RECORD_OVERHEAD > limit:
        raise FrameTooLargeError(
            f"a frame record is {record_bytes:,} bytes, more than topic {topic}'s max.message.bytes ({limit:,}): "
            f"send to a new topic (ssp creates it with VideoConfig.max_frame_bytes = {max_bytes:,}), raise the "
            "topic's limit, or send a smaller video")
    return limit


@dataclass(frozen=True)
class VideoProduceResult:
    video: str
    topic: str
    frames: int
    width: int
    height: int
    seconds: float
    interrupted: bool

    def line(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        size = frame_bytes(self.width, self.height)
        return (f"produced {self.frames} frames of video {self.video} ({self.width}x{self.height}, {size:,} bytes a "
                f"record) to {self.topic} in {self.seconds:.1f} s ({rate:.1f} frames/s)"
                + (" (stopped early)" if self.interrupted else ""))


def _first_and_rest(frames):
    iterator = iter(frames)
    try:
        first = next(iterator)
    except StopIteration:
        raise SspError("the video has no frames") from None

    def chained():
        yield first
        yield from iterator

    return first, chained()


def produce_video(*, path: str | None, topic: str | None = None, fps: float | None = None, loop: bool = False,
                  max_frames: int | None = None, rate: float | None = None, video: str | None = None,
                  stop: threading.Event | None = None, show_progress: bool = True) -> VideoProduceResult:
    """Send a video's frames to the frames topic at ``rate`` frames a second (default ``fps``; 0: as fast as
    the broker takes them), at most ``max_frames`` (default: a file's every frame; ``VideoConfig.frames``
    of the generated video), keyed by the video id (default: the file's stem, or the generated id)."""
    from ssp.kafka.producer import make_producer, produce
    from ssp.sources.video import frame_records, video_frames

    infra, topics, config = InfraConfig(), TopicsConfig(), VideoConfig()
    topic = topic or topics.frames_topic
    fps = config.fps if fps is None else fps
    if not fps > 0:
        raise SspError(f"--fps must be above 0, got {fps}")
    if path:
        video = video or Path(path).stem
        frames = video_frames(path, max_frames, loop=loop)
    else:
        if loop:
            raise SspError("--loop repeats a video file (--path); the generated video runs as long as asked")
        video = video or generated_video_id(config.scene, config.width, config.height, config.seed)
        frames = video_frames(None, config.frames if max_frames is None else max_frames, scene=config.scene,
                              width=config.width, height=config.height, seed=config.seed)
    (index, pixels), frames = _first_and_rest(frames)
    height, width = pixels.shape[:2]
    record = frame_bytes(width, height)
    ensure_frames_topic(infra.kafka_bootstrap, topic, topics.partitions, config.max_frame_bytes, record)
    producer = make_producer(infra.kafka_bootstrap, linger_ms=5, batch_size=record + _RECORD_OVERHEAD,
                             max_request_size=max(record + _RECORD_OVERHEAD, 2 * 1024 * 1024))
    try:
        summary = produce(frame_records(video, frames, fps=fps), producer, topic, rate=fps if rate is None else rate,
                          max_records=max_frames, show_progress=show_progress, stop=stop)
    finally:
        producer.close()
    return VideoProduceResult(video, topic, summary.sent, width, height, summary.seconds, summary.interrupted)

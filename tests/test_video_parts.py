"""The video stream's parts without services: the frame record, the generated video, a stream task's
quantisation of one video's records (dead letters, a video sent again, the state carried between
micro-batches giving the frames one uninterrupted pass gives), the settings, and the output files."""

from __future__ import annotations

import numpy as np
import pytest

from ssp.clustering.palette import FrameQuantiser
from ssp.config import VideoConfig
from ssp.sources.video import VideoSourceError, frame_records, generated_frame, generated_frames, video_frames
from ssp.streaming.frame_stream import FrameStreamError, frame_settings, quantise_records
from ssp.video.output import decode_png, write_png, write_video
from ssp.video.produce import generated_video_id, parse_generated_id
from ssp.video.record import FrameParseError, decode_frame

ARGS = {"lambda": 2500.0, "colours": None, "coreset_size": 500, "max_iter": 100, "seed": 7}


def kafka_rows(records, partition=0, first_offset=0):
    return [{"key": key, "value": value, "topic": "frames", "partition": partition, "offset": first_offset + i}
            for i, (key, value) in enumerate(records)]


def test_frame_records_round_trip_with_stream_time():
    frames = list(generated_frames(3, scene="palette", width=40, height=24, seed=1))
    records = list(frame_records("clip", frames, fps=25))
    decoded = [decode_frame(value, key) for key, value in records]
    assert [(f.video, f.index, f.width, f.height) for f in decoded] == [("clip", i, 40, 24) for i in range(3)]
    assert decoded[1].ts_ms - decoded[0].ts_ms == 40
    assert all((f.pixels == pixels).all() for f, (_, pixels) in zip(decoded, frames, strict=True))
    with pytest.raises(FrameParseError, match="not UTF-8"):
        decode_frame(records[0][1], b"\xff\xfe")


def test_generated_frames_are_deterministic_and_checked():
    assert (generated_frame(9, width=50, height=30, seed=2) == list(generated_frames(10, width=50, height=30,
                                                                                   seed=2))[9][1]).all()
    assert not (generated_frame(9, width=50, height=30, seed=2) == generated_frame(10, width=50, height=30,
                                                                                   seed=2)).all()
    with pytest.raises(VideoSourceError, match="unknown scene 'forest'"):
        next(generated_frames(1, scene="forest"))
    with pytest.raises(VideoSourceError, match="8 to 8192 pixels a side, got 4x30"):
        next(generated_frames(1, width=4, height=30))
    with pytest.raises(VideoSourceError, match="no such video file"):
        next(video_frames("/nonexistent/clip.mp4", 3))
    assert parse_generated_id(generated_video_id("palette", 64, 36, 3)) == ("palette", 64, 36, 3)


def test_a_video_file_is_read_back(tmp_path):
    from ssp.video.output import encode_png

    frames = list(generated_frames(5, scene="palette", width=48, height=32, seed=0))
    pngs = [(i, encode_png(np.arange(48 * 32).reshape(32, 48) % 2, np.array([[0, 0, 0], [255, 255, 255]],
                                                                             dtype=np.uint8))) for i, _ in frames]
    path = tmp_path / "clip.mp4"
    assert write_video(path, pngs, 10) == 5
    read = list(video_frames(str(path), None))
    assert [i for i, _ in read] == list(range(5)) and read[0][1].shape == (32, 48, 3)
    assert len(list(video_frames(str(path), 3))) == 3
    looped = video_frames(str(path), 12, loop=True)
    assert [i for i, _ in looped] == list(range(12))  # the index goes on across the loops


def test_a_task_quantises_a_videos_records_in_kafka_order_and_letters_the_bad_ones():
    frames = list(generated_frames(6, scene="palette", width=48, height=27, seed=7))
    records = list(frame_records("clip", frames, fps=30))
    rows = kafka_rows([*records[:3], (b"clip", b"not a frame"), *records[3:], records[2]])
    out, state = quantise_records(list(reversed(rows)), None, ARGS)  # any order in: Kafka order out
    assert [r.get("frame_index") for r in out] == [0, 1, 2, None, 3, 4, 5, None]
    assert [r.get("dead_reason") for r in out if r.get("dead_reason")] == ["not_a_frame", "replayed_frame"]
    assert state["frames"] == 6 and state["last_index"] == 5

    # the same records over three micro-batches, the state carried between them: the same frames, bit for bit
    split: list[dict] = []
    carried = None
    for part in (rows[:2], rows[2:5], rows[5:]):
        got, carried = quantise_records(part, carried, ARGS)
        split += got
    assert [r.get("png") for r in split] == [r.get("png") for r in out]
    assert [r.get("colours") for r in split] == [r.get("colours") for r in out]
    assert carried == state

    # what a task writes for a frame is the quantiser's own result
    direct = FrameQuantiser(lambda_=2500.0, coreset_size=500, seed=7)
    for index, pixels in frames[:2]:
        result = direct.quantise(pixels, index)
        row = out[index]
        assert row["colours"] == result.palette.colours.ravel().tolist()
        assert (decode_png(row["png"]) == result.image).all()


def test_a_batch_of_only_bad_records_leaves_the_state_alone():
    out, state = quantise_records(kafka_rows([(b"clip", b"junk")]), None, ARGS)
    assert state is None and out[0]["dead_reason"] == "not_a_frame" and out[0]["dead_value"] == b"junk"


def test_settings_and_their_errors():
    settings = frame_settings(VideoConfig(colour_lambda=900.0), topic="t", version=4)
    assert (settings.lambda_, settings.colours, settings.coreset_size, settings.job) == (900.0, None, 1000,
                                                                                         "palette:t")
    assert frame_settings(VideoConfig(colours=6), topic="t").colours == 6
    with pytest.raises(FrameStreamError, match="--coreset-size must be a whole number or 'auto', got 'many'"):
        frame_settings(VideoConfig(), coreset_size="many")
    with pytest.raises(FrameStreamError, match="coreset_size must be an integer >= 1"):
        frame_settings(VideoConfig(), coreset_size=0)


def test_pngs_are_written_whole(tmp_path):
    path = write_png(tmp_path / "a" / "frame_000001.png", b"\x89PNG fake")
    assert path.read_bytes() == b"\x89PNG fake" and not list(path.parent.glob(".*partial"))

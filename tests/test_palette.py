"""ssp.clustering.palette: the colour palette of video frames (coreset, weighted DP-means warm-started
from the previous frame, nearest-colour repaint), on frames drawn with a known palette."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import ssp.clustering.palette
from ssp.clustering.palette import FrameQuantiser, nearest_colours
from ssp.sources.video import KNOWN_PALETTE, generated_frames

WIDTH, HEIGHT = 160, 90
LAMBDA = 2500.0  # a pixel 50 away from every colour opens a new one; the known colours are >= 110 apart


def test_the_doctests():
    assert doctest.testmod(ssp.clustering.palette).failed == 0


def truth_colours(frame: np.ndarray) -> np.ndarray:
    return np.unique(frame.reshape(-1, 3), axis=0).astype(np.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_palette_frames_give_their_colours(seed):
    clean = dict(generated_frames(30, scene="palette", seed=seed, noise=0, width=WIDTH, height=HEIGHT))
    quantiser = FrameQuantiser(lambda_=LAMBDA, seed=seed)
    for index, frame in generated_frames(30, scene="palette", seed=seed, width=WIDTH, height=HEIGHT):
        truth = truth_colours(clean[index])
        assert len(truth) >= 6 and {tuple(c) for c in truth.astype(int)} <= {tuple(c) for c in KNOWN_PALETTE}
        result = quantiser.quantise(frame, index)
        assert result.n_colours == len(truth), f"frame {index}"
        distances = np.sqrt(((result.palette.colours[:, None, :] - truth[None]) ** 2).sum(axis=2))
        assert distances.min(axis=1).max() < 8.0, f"frame {index}: a colour is far from the truth"
        assert sorted(distances.argmin(axis=1).tolist()) == list(range(len(truth)))  # one colour per true one
        assert result.palette.shares.sum() == pytest.approx(1.0)
        # the repaint is the nearest colour of every pixel, and the frame is painted with the palette's RGB
        np.testing.assert_array_equal(result.labels.ravel(),
                                      nearest_colours(frame.reshape(-1, 3), result.palette.colours))
        np.testing.assert_array_equal(result.image, result.palette.rgb()[result.labels])


@pytest.mark.parametrize("scene", ["palette", "landscape"])
def test_a_static_scene_keeps_its_colour_count_within_one(scene):
    quantiser = FrameQuantiser(lambda_=LAMBDA, seed=4)
    counts = [quantiser.quantise(frame, index).n_colours
              for index, frame in generated_frames(25, scene=scene, seed=4, static=True, width=WIDTH, height=HEIGHT)]
    assert max(abs(a - b) for a, b in zip(counts, counts[1:], strict=False)) <= 1, counts


def test_the_warm_start_keeps_the_palette_of_a_static_scene():
    frames = list(generated_frames(6, scene="palette", seed=5, static=True, width=WIDTH, height=HEIGHT))
    quantiser = FrameQuantiser(lambda_=LAMBDA, seed=5)
    palettes = [quantiser.quantise(frame, index).palette for index, frame in frames]
    for before, after in zip(palettes, palettes[1:], strict=False):
        assert len(before) == len(after)
        # the colours stay in their order and move by a fraction of the noise
        assert np.abs(before.colours - after.colours).max() < 4.0


def test_colours_instead_of_lambda():
    frames = list(generated_frames(10, scene="palette", seed=0, width=WIDTH, height=HEIGHT))
    truth = len(truth_colours(next(generated_frames(1, scene="palette", seed=0, noise=0, width=WIDTH,
                                                    height=HEIGHT))[1]))
    quantiser = FrameQuantiser(colours=truth, seed=0)
    counts = [quantiser.quantise(frame, index).n_colours for index, frame in frames]
    # farthest-first gives "about k": its k-th point is the first that lands in an already covered colour,
    # and the noise's farthest pixels sit near that distance
    assert all(abs(count - truth) <= 1 for count in counts), counts
    assert quantiser.to_state()["lambda"] == quantiser.lambda_  # derived once, kept for the video


def test_replayed_frames_get_the_same_palette_and_the_state_round_trips():
    frames = list(generated_frames(5, scene="landscape", seed=2, width=WIDTH, height=HEIGHT))
    first = FrameQuantiser(lambda_=LAMBDA, seed=2)
    for index, frame in frames[:3]:
        first.quantise(frame, index)
    state = json.loads(json.dumps(first.to_state()))
    resumed = FrameQuantiser.from_state(state)
    a, b = first.quantise(*frames[3][::-1]), resumed.quantise(*frames[3][::-1])
    np.testing.assert_array_equal(a.palette.colours, b.palette.colours)
    np.testing.assert_array_equal(a.image, b.image)
    assert resumed.frames == 4 and resumed.last_index == 3


def test_the_repaint_is_the_exact_nearest_colour_even_for_near_ties():
    rng = np.random.default_rng(11)
    pixels = rng.integers(0, 256, (20_000, 3)).astype(np.uint8)
    for spread in (1e-2, 1e-3, 1e-4):
        colours = rng.uniform(0, 255, (7, 3))
        colours[3] = colours[1] + rng.normal(0, spread, 3)  # two colours all but equal: ties to break right
        colours[5] = colours[1] + rng.normal(0, spread, 3)
        differences = pixels[:, None, :].astype(np.float64) - colours[None]
        truth = np.einsum("nkd,nkd->nk", differences, differences).argmin(axis=1)
        np.testing.assert_array_equal(nearest_colours(pixels, colours), truth)


def test_the_pipelined_frames_are_the_frames_one_after_another():
    frames = list(generated_frames(12, scene="landscape", seed=6, width=WIDTH, height=HEIGHT))
    one, piped = FrameQuantiser(lambda_=LAMBDA, seed=6), FrameQuantiser(lambda_=LAMBDA, seed=6)
    expected = [one.quantise(frame, index) for index, frame in frames]
    got = list(piped.quantise_frames(frames, threads=2, then=lambda result: (result.index, result)))
    assert [index for index, _ in got] == [index for index, _ in frames]
    for want, (_, result) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(result.palette.colours, want.palette.colours)
        np.testing.assert_array_equal(result.labels, want.labels)
        assert result.seconds > 0
    assert piped.to_state() == one.to_state()


def test_bad_input_is_named():
    quantiser = FrameQuantiser(lambda_=LAMBDA)
    with pytest.raises(ValueError, match=r"\(height, width, 3\) RGB array, got shape \(4, 4\)"):
        quantiser.quantise(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB values, got float64"):
        quantiser.quantise(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="coreset_size must be an integer >= 1"):
        FrameQuantiser(lambda_=LAMBDA, coreset_size=0)
    with pytest.raises(ValueError, match="one of them"):
        FrameQuantiser()
    with pytest.raises(ValueError, match="not a palette state"):
        FrameQuantiser.from_state({"model": "dpmeans"})

"""ssp.sources.points: the seeded drifting-mixture points source and its scenarios."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import ssp.sources.points
from ssp.sources.points import (
    PointsSource,
    ScenarioError,
    load_scenario,
    parse_scenario,
    points_payloads,
    scenario_preset,
)

EVERYTHING = {
    "dim": 2, "std": 0.5,
    "centres": [
        {"at": [0, 0], "drift": [0.5, 0]},                        # 0: drifts right, 0.5 a second
        {"at": [20, 20], "die": 40},                              # 1: dies at 40 s
        {"at": [-20, 10], "jumps": [{"t": 30, "to": [-20, -10]}]},  # 2: jumps at 30 s
        {"at": [20, -20], "appear": 20, "weight": 2},             # 3: born at 20 s, twice as likely
    ],
}


def test_module_docstring_examples_run():
    assert doctest.testmod(ssp.sources.points).failed == 0


def test_points_are_canonical_json_records():
    points = list(points_payloads(3, seed=5, k=2, dim=3, rate=4, scenario="drift"))
    assert [sorted(p) for p in points] == [["id", "truth", "ts", "x"]] * 3
    assert [p["id"] for p in points] == [0, 1, 2]
    assert [p["ts"] for p in points] == ["2024-03-04T08:00:00.000Z", "2024-03-04T08:00:00.250Z",
                                         "2024-03-04T08:00:00.500Z"]
    assert all(len(p["x"]) == 3 and all(type(v) is float for v in p["x"]) for p in points)
    assert all(type(p["truth"]) is int and 0 <= p["truth"] < 2 for p in points)
    assert json.loads(json.dumps(points)) == points


def test_the_same_seed_gives_the_same_points_however_many_are_asked_for():
    scenario = parse_scenario(EVERYTHING)
    long = list(PointsSource(scenario, seed=7).generate(3000))
    assert list(PointsSource(scenario, seed=7).generate(1500)) == long[:1500]
    again = PointsSource(scenario, seed=7)
    assert list(again.generate(10)) == long[:10] and list(again.generate(10)) == long[:10]  # each call restarts
    other = list(PointsSource(scenario, seed=8).generate(10))
    assert [p["x"] for p in other] != [p["x"] for p in long[:10]]
    t, x, truth = PointsSource(scenario, seed=7).arrays(3000)
    assert x.tolist() == [p["x"] for p in long] and truth.tolist() == [p["truth"] for p in long]
    assert t[100] == 1.0  # 100 points a second of stream time by default


def windows(source: PointsSource, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return source.arrays(int(seconds * source.rate))


def mean_of(x, truth, t, centre, start, end):
    mine = (truth == centre) & (t >= start) & (t < end)
    assert mine.sum() > 50, (centre, start, end)
    return x[mine].mean(axis=0)


def test_drift_jump_appear_and_die_are_visible_in_the_points():
    scenario = parse_scenario(EVERYTHING)
    t, x, truth = windows(PointsSource(scenario, seed=2, rate=100), 60)
    # drift: centre 0 is 0.5 a second further right, 10 s later
    early, late = mean_of(x, truth, t, 0, 0, 2), mean_of(x, truth, t, 0, 10, 12)
    np.testing.assert_allclose(late - early, [5.0, 0.0], atol=0.3)
    np.testing.assert_allclose(early, scenario.positions(1.0)[0], atol=0.2)
    # jump: centre 2 is at (-20, 10) before 30 s and at (-20, -10) from then on, nowhere in between
    np.testing.assert_allclose(mean_of(x, truth, t, 2, 0, 30), [-20, 10], atol=0.2)
    np.testing.assert_allclose(mean_of(x, truth, t, 2, 30, 60), [-20, -10], atol=0.2)
    assert np.abs(x[(truth == 2)][:, 1]).min() > 5
    # appear: no point of centre 3 before 20 s; die: none of centre 1 from 40 s
    assert not ((truth == 3) & (t < 20)).any() and ((truth == 3) & (t >= 20)).sum() > 500
    assert not ((truth == 1) & (t >= 40)).any() and ((truth == 1) & (t < 40)).sum() > 500
    # weights: between 20 s and 40 s centre 3 draws about twice the share of each other one
    window = (t >= 20) & (t < 40)
    shares = np.bincount(truth[window], minlength=4) / window.sum()
    np.testing.assert_allclose(shares, [0.2, 0.2, 0.2, 0.4], atol=0.03)
    # spread: the scenario's std
    np.testing.assert_allclose(x[(truth == 1)].std(axis=0), [0.5, 0.5], atol=0.05)


def test_presets_place_k_centres_in_dim_dimensions_by_seed():
    static = scenario_preset("static", k=4, dim=5, seed=1)
    assert static.dim == 5 and len(static.centres) == 4
    assert all(c.drift == (0.0,) * 5 and c.die is None and not c.jumps for c in static.centres)
    assert scenario_preset("static", k=4, dim=5, seed=1) == static
    assert scenario_preset("static", k=4, dim=5, seed=2) != static
    drift = scenario_preset("drift", k=3, dim=2, seed=1, speed=0.1)
    assert all(abs(np.linalg.norm(c.drift) - 0.1) < 1e-5 for c in drift.centres)
    events = scenario_preset("events", k=3, dim=2, seed=1)
    assert [len(c.jumps) for c in events.centres] == [1, 0, 0, 0]
    assert [(c.appear, c.die) for c in events.centres] == [(0, None), (0, 120), (0, None), (90, None)]
    gaps = [np.linalg.norm(np.subtract(a.at, b.at)) for i, a in enumerate(static.centres) for b in static.centres[i + 1:]]
    assert min(gaps) >= 6.0  # well apart (6 std), so the truth is recoverable by clustering
    one = scenario_preset("events", k=1, dim=1, seed=1)
    assert [(c.appear, c.die) for c in one.centres] == [(0, None), (90, None)]


def test_load_scenario_takes_a_preset_json_text_or_nothing():
    assert load_scenario("static", k=2, dim=3, seed=4) == scenario_preset("static", k=2, dim=3, seed=4)
    assert load_scenario(None, k=2, dim=3, seed=4) == scenario_preset("events", k=2, dim=3, seed=4)
    assert load_scenario(json.dumps(EVERYTHING)) == parse_scenario(EVERYTHING)
    assert parse_scenario(parse_scenario(EVERYTHING).to_dict()) == parse_scenario(EVERYTHING)
    points = list(points_payloads(4, seed=1, scenario=json.dumps({"centres": [{"at": [1, 2, 3], "std": 0}]})))
    assert [p["x"] for p in points] == [[1.0, 2.0, 3.0]] * 4


@pytest.mark.parametrize(("spec", "message"), [
    ("{not json", "scenario: not valid JSON"),
    ([], "scenario: the scenario must be an object"),
    ({"centres": []}, "centres must be a non-empty list of centres"),
    ({"centres": [{"at": [0]}], "speed": 1}, "the scenario has unknown key 'speed'"),
    ({"centres": [{"at": [0], "drfit": [1]}]}, "centres[0] has unknown key 'drfit'"),
    ({"centres": [{"drift": [1]}]}, "centres[0].at must be a non-empty list of numbers"),
    ({"dim": 2, "centres": [{"at": [0]}]}, "centres[0].at must have 2 numbers (dim), got 1"),
    ({"dim": 0, "centres": [{"at": [0]}]}, "dim must be an integer of 1 or more, got 0"),
    ({"centres": [{"at": [0, "a"]}]}, "centres[0].at[1] must be a finite number, got 'a'"),
    ({"centres": [{"at": [0, 0], "drift": [1, 2, 3]}]}, "centres[0].drift must have 2 numbers (dim), got 3"),
    ({"centres": [{"at": [0], "std": -1}]}, "centres[0].std must be 0 or more, got -1"),
    ({"std": float("nan"), "centres": [{"at": [0]}]}, "scenario: std must be a finite number, got nan"),
    ({"centres": [{"at": [0], "weight": 0}]}, "centres[0].weight must be more than 0, got 0"),
    ({"centres": [{"at": [0]}, {"at": [1], "appear": 5, "die": 5}]}, "centres[1].die must be after appear (5), got 5"),
    ({"centres": [{"at": [0], "appear": -1}]}, "centres[0].appear must be 0 or more, got -1"),
    ({"centres": [{"at": [0]}, {"at": [1], "appear": 10, "jumps": [{"t": 5, "to": [2]}]}]},
     "centres[1].jumps[0].t must be after 10"),
    ({"centres": [{"at": [0], "jumps": [{"t": 5, "to": [2]}, {"t": 3, "to": [1]}]}]},
     "centres[0].jumps[1].t must be after 5"),
    ({"centres": [{"at": [0], "die": 10, "jumps": [{"t": 10, "to": [2]}]}, {"at": [1]}]},
     "centres[0].jumps[0].t must be before the centre dies at 10, got 10"),
    ({"centres": [{"at": [0], "jumps": [{"t": 5}]}]}, "centres[0].jumps[0] needs both t and to"),
    ({"centres": [{"at": [0], "jumps": [{"t": 5, "to": [1, 1]}]}]}, "centres[0].jumps[0].to must have 1 numbers"),
    ({"centres": [{"at": [0], "appear": 3}]}, "no centre is alive at t=0 s"),
    ({"centres": [{"at": [0], "die": 10}, {"at": [5], "appear": 20}]}, "no centre is alive at t=10 s"),
])
def test_bad_scenarios_are_named(spec, message):
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(spec)
    assert message in str(caught.value)


def test_bad_presets_and_source_settings_are_named():
    with pytest.raises(ScenarioError, match=r"unknown preset 'wobble' \(presets: static, drift, events, merge\)"):
        load_scenario("wobble")
    with pytest.raises(ScenarioError, match=r"k must be an integer of 1 or more, got 0"):
        scenario_preset("static", k=0)
    scenario = scenario_preset("static")
    with pytest.raises(ValueError, match=r"rate must be a positive number"):
        PointsSource(scenario, rate=0)
    with pytest.raises(ValueError, match=r"n must be an integer of 0 or more"):
        PointsSource(scenario).generate(-1)
    with pytest.raises(TypeError, match=r"scenario must be a Scenario"):
        PointsSource(EVERYTHING)  # type: ignore[arg-type]


def test_the_merge_preset_brings_two_centres_together_into_one_with_both_shares():
    scenario = scenario_preset("merge", k=3, dim=2, seed=5)
    before, after = scenario.positions(89.9), scenario.positions(90.0)
    assert set(before) == {0, 1, 2, 3} and set(after) == {2, 3, 4}
    assert np.linalg.norm(np.subtract(before[0], before[1])) < 0.5  # they have met
    np.testing.assert_allclose(after[4], np.add(before[0], before[1]) / 2, atol=0.05)
    _, _, truth = PointsSource(scenario, seed=5, rate=100).arrays(12_000)  # 120 s
    late = truth[9_000:]
    assert set(np.unique(late)) == {2, 3, 4}
    assert 0.4 < np.mean(late == 4) < 0.6  # the merged centre draws both shares: 2 of 4

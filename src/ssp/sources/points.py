"""A seeded stream of points from a drifting Gaussian mixture, for the clustering use cases.

Each point is a dict ``{"id": int, "ts": str, "x": [float, ...], "truth": int}``: ``id`` is the
point's index in its seed's stream (``first_id`` onwards; keyed by it, a re-run of the same seed
rewrites the same records), ``ts`` its stream time in ISO 8601 UTC with milliseconds, ``x`` its
coordinates and ``truth`` the index of the scenario centre that drew it. Like the synthetic tweets,
the stream is deterministic: stream time is ``start + index / rate`` (``rate`` points per second of
stream time, never the wall clock), and the same seed gives the same points in any process, however
many are asked for (``generate(5)`` is the first five of ``generate(10)``).

A scenario says where the centres are over stream time, in seconds from the start:

>>> scenario = parse_scenario({
...     "dim": 2, "std": 0.5,
...     "centres": [
...         {"at": [0, 0], "drift": [0.1, 0]},                         # moves right at 0.1 a second
...         {"at": [10, 10], "die": 60},                               # gone after 60 s
...         {"at": [-10, 5], "jumps": [{"t": 30, "to": [-10, -5]}]},   # jumps down at 30 s
...         {"at": [5, -8], "appear": 45, "weight": 2},                # born at 45 s, twice as likely
...     ],
... })
>>> scenario.alive(50.0)
[True, True, True, True]
>>> scenario.positions(70.0)
{0: [7.0, 0.0], 2: [-10.0, -5.0], 3: [5.0, -8.0]}
>>> points = list(PointsSource(scenario, seed=1, rate=10).generate(3))
>>> [(p["id"], p["ts"], p["truth"], len(p["x"])) for p in points][:2]
[(0, '2024-03-04T08:00:00.000Z', 0, 2), (1, '2024-03-04T08:00:00.100Z', 1, 2)]

Each centre: ``at`` (its position when it appears), ``drift`` (a velocity, coordinates a second,
default none), ``std`` (its spread; default the scenario's ``std``, itself default 1), ``weight``
(its share of the points among the centres alive then; default 1), ``appear`` and ``die`` (it is
alive from ``appear``, default 0, until before ``die``, default never) and ``jumps`` (at ``t`` it
moves to ``to``, and drifts on from there). At every moment some centre must be alive.

:func:`scenario_preset` builds ``"static"``, ``"drift"`` and ``"events"`` scenarios for any ``k`` and
``dim`` (the ``ssp produce --source points --k K --dim D`` defaults), and :func:`load_scenario` takes
a preset name or a scenario as JSON text (from a flag or a gin setting). A bad scenario raises
:class:`ScenarioError` naming the field: ``centres[1].drift must have 2 numbers (dim), got 3``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ssp.errors import SspError

__all__ = [
    "DEFAULT_START",
    "PRESETS",
    "Centre",
    "Jump",
    "PointsSource",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "points_payloads",
    "scenario_preset",
]

DEFAULT_START = datetime(2024, 3, 4, 8, 0, tzinfo=UTC)  # the synthetic tweets' start too
PRESETS = ("static", "drift", "events", "merge")
_CHUNK = 1024  # points drawn per step; fixed, so a stream's points do not depend on how many are asked for
_CENTRE_KEYS = ("at", "drift", "std", "weight", "appear", "die", "jumps")
_SCENARIO_KEYS = ("dim", "std", "centres")


class ScenarioError(SspError, ValueError):
    """A scenario that cannot be generated; the message names the field and the problem."""


@dataclass(frozen=True)
class Jump:
    t: float
    to: tuple[float, ...]


@dataclass(frozen=True)
class Centre:
    at: tuple[float, ...]
    drift: tuple[float, ...]
    std: float
    weight: float
    appear: float
    die: float | None
    jumps: tuple[Jump, ...]

    def alive(self, t: float) -> bool:
        return self.appear <= t and (self.die is None or t < self.die)

    def position(self, t: np.ndarray) -> np.ndarray:
        """Positions ``(len(t), dim)`` at stream times ``t`` (seconds): the last place set, plus drift since."""
        starts = np.array([self.appear] + [jump.t for jump in self.jumps])
        bases = np.array([self.at] + [jump.to for jump in self.jumps])
        segment = np.maximum(np.searchsorted(starts, t, side="right") - 1, 0)
        return bases[segment] + np.asarray(self.drift) * (t - starts[segment])[:, None]


@dataclass(frozen=True)
class Scenario:
    """Where a mixture's centres are over stream time; build it with :func:`parse_scenario`."""

    dim: int
    centres: tuple[Centre, ...]

    def alive(self, t: float) -> list[bool]:
        """Which centres are alive at stream time ``t`` (seconds)."""
        return [centre.alive(t) for centre in self.centres]

    def positions(self, t: float) -> dict[int, list[float]]:
        """The true position of each centre alive at ``t``, by centre index (for plots and tests)."""
        times = np.array([float(t)])
        return {index: centre.position(times)[0].tolist()
                for index, centre in enumerate(self.centres) if centre.alive(t)}

    def to_dict(self) -> dict[str, Any]:
        """The scenario as JSON-able values that :func:`parse_scenario` reads back."""
        return {"dim": self.dim, "centres": [
            {"at": list(c.at), "drift": list(c.drift), "std": c.std, "weight": c.weight, "appear": c.appear,
             "die": c.die, "jumps": [{"t": j.t, "to": list(j.to)} for j in c.jumps]} for c in self.centres]}


# ---------------------------------------------------------------------- parsing
def _number(where: str, value: Any, *, minimum: float | None = None, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f"scenario: {where} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ScenarioError(f"scenario: {where} must be more than 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise ScenarioError(f"scenario: {where} must be {minimum:g} or more, got {value!r}")
    return float(value)


def _vector(where: str, value: Any, dim: int | None) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ScenarioError(f"scenario: {where} must be a non-empty list of numbers, got {value!r}")
    numbers = tuple(_number(f"{where}[{i}]", v) for i, v in enumerate(value))
    if dim is not None and len(numbers) != dim:
        raise ScenarioError(f"scenario: {where} must have {dim} numbers (dim), got {len(numbers)}")
    return numbers


def _object(where: str, value: Any, known: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(f"scenario: {where} must be an object, got {value!r}")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ScenarioError(f"scenario: {where} has unknown key {unknown[0]!r} (known: {', '.join(known)})")
    return value


def _jumps(where: str, value: Any, dim: int, appear: float, die: float | None) -> tuple[Jump, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ScenarioError(f"scenario: {where} must be a list of {{t, to}} objects, got {value!r}")
    jumps: list[Jump] = []
    for index, raw in enumerate(value):
        spot = f"{where}[{index}]"
        spec = _object(spot, raw, ("t", "to"))
        if "t" not in spec or "to" not in spec:
            raise ScenarioError(f"scenario: {spot} needs both t and to")
        t = _number(f"{spot}.t", spec["t"])
        previous = jumps[-1].t if jumps else appear
        if t <= previous:
            raise ScenarioError(f"scenario: {spot}.t must be after {previous:g} (the centre's appear time or "
                                f"its previous jump), got {t:g}")
        if die is not None and t >= die:
            raise ScenarioError(f"scenario: {spot}.t must be before the centre dies at {die:g}, got {t:g}")
        jumps.append(Jump(t, _vector(f"{spot}.to", spec["to"], dim)))
    return tuple(jumps)


def _centre(where: str, raw: Any, dim: int, default_std: float) -> Centre:
    spec = _object(where, raw, _CENTRE_KEYS)
    if "at" not in spec:
        raise ScenarioError(f"scenario: {where} needs at (its position)")
    at = _vector(f"{where}.at", spec["at"], dim)
    drift = _vector(f"{where}.drift", spec["drift"], dim) if spec.get("drift") is not None else (0.0,) * dim
    std = _number(f"{where}.std", spec["std"], minimum=0.0) if spec.get("std") is not None else default_std
    weight = _number(f"{where}.weight", spec.get("weight", 1.0), positive=True)
    appear = _number(f"{where}.appear", spec.get("appear", 0.0), minimum=0.0)
    die = None if spec.get("die") is None else _number(f"{where}.die", spec["die"])
    if die is not None and die <= appear:
        raise ScenarioError(f"scenario: {where}.die must be after appear ({appear:g}), got {die:g}")
    jumps = _jumps(f"{where}.jumps", spec.get("jumps") or [], dim, appear, die)
    return Centre(at, drift, std, weight, appear, die, jumps)


def parse_scenario(spec: Mapping[str, Any] | str) -> Scenario:
    """A :class:`Scenario` from its JSON form (a dict, or JSON text); see the module docstring.

    >>> parse_scenario({"centres": [{"at": [0, 0]}, {"at": [1, 2, 3]}]})
    Traceback (most recent call last):
    ...
    ssp.sources.points.ScenarioError: scenario: centres[1].at must have 2 numbers (dim), got 3
    >>> parse_scenario({"centres": [{"at": [0], "die": 10}, {"at": [5], "appear": 20}]})
    Traceback (most recent call last):
    ...
    ssp.sources.points.ScenarioError: scenario: no centre is alive at t=10 s; every moment needs one
    """
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as err:
            raise ScenarioError(f"scenario: not valid JSON ({err})") from None
    spec = _object("the scenario", spec, _SCENARIO_KEYS)
    raw_centres = spec.get("centres")
    if isinstance(raw_centres, (str, bytes)) or not isinstance(raw_centres, Sequence) or not raw_centres:
        raise ScenarioError(f"scenario: centres must be a non-empty list of centres, got {raw_centres!r}")
    if spec.get("dim") is not None:
        if isinstance(spec["dim"], bool) or not isinstance(spec["dim"], int) or spec["dim"] < 1:
            raise ScenarioError(f"scenario: dim must be an integer of 1 or more, got {spec['dim']!r}")
        dim = spec["dim"]
    else:
        first = raw_centres[0].get("at") if isinstance(raw_centres[0], Mapping) else None
        dim = len(_vector("centres[0].at", first, None))
    default_std = _number("std", spec.get("std", 1.0), minimum=0.0)
    centres = tuple(_centre(f"centres[{i}]", raw, dim, default_std) for i, raw in enumerate(raw_centres))
    scenario = Scenario(dim, centres)
    # who is alive changes only at appear and die times, so checking those (and 0) checks every moment
    for t in sorted({0.0} | {c.appear for c in centres} | {c.die for c in centres if c.die is not None}):
        if not any(scenario.alive(t)):
            raise ScenarioError(f"scenario: no centre is alive at t={t:g} s; every moment needs one")
    return scenario


# ---------------------------------------------------------------------- presets
def _spread_positions(rng: np.random.Generator, k: int, dim: int, std: float) -> np.ndarray:
    """``k`` seeded positions in a box that grows with ``k``, at least about 6 std apart where it fits."""
    half_width = 4.0 * std * k ** (1.0 / dim) + 4.0 * std
    positions: list[np.ndarray] = []
    for _ in range(k):
        best, best_gap = None, -1.0
        for _ in range(200):
            candidate = rng.uniform(-half_width, half_width, dim)
            gap = min((float(np.linalg.norm(candidate - p)) for p in positions), default=math.inf)
            if gap > best_gap:
                best, best_gap = candidate, gap
            if gap >= 6.0 * std:
                break
        positions.append(best)
    return np.round(np.array(positions), 3)


def _unit_directions(rng: np.random.Generator, k: int, dim: int) -> np.ndarray:
    directions = rng.standard_normal((k, dim))
    return directions / np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)


def _merging(places: np.ndarray, k: int, dim: int) -> list[dict[str, Any]]:
    """The ``merge`` preset's centres (see :func:`scenario_preset`) from k + 2 ``places``."""
    centres: list[dict[str, Any]] = [{"at": places[i].tolist()} for i in range(k)]
    centres.append({"at": places[k].tolist(), "appear": 30})
    if k >= 2:
        meet, middle = 90.0, (places[0] + places[1]) / 2
        for i in (0, 1):  # each drifts to the midpoint, where both give way to one centre at 90 s
            centres[i] = {"at": places[i].tolist(), "drift": np.round((middle - places[i]) / meet, 6).tolist(),
                          "die": meet}
        centres.append({"at": np.round(middle, 3).tolist(), "appear": meet, "weight": 2})
    return centres


def scenario_preset(name: str, *, k: int = 3, dim: int = 2, seed: int = 42, std: float = 1.0,
                    speed: float = 0.05) -> Scenario:
    """A ready scenario of ``k`` centres in ``dim`` dimensions, placed by ``seed``:

    * ``static``: the centres stay where they are;
    * ``drift``: each moves ``speed`` a second in its own direction;
    * ``events``: drift, and centre 0 jumps at 60 s, a new centre appears at 90 s and (with two or
      more) centre 1 dies at 120 s.
    * ``merge`` (for the algorithms that find the number of clusters): static centres, a new one
      appearing at 30 s, and (with two or more) centres 0 and 1 drifting towards each other until they
      become one at 90 s, at their midpoint, with both their shares.

    >>> events = scenario_preset("events", k=3, dim=2, seed=1)
    >>> len(events.centres), sum(events.alive(0)), sum(events.alive(100)), sum(events.alive(130))
    (4, 3, 4, 3)
    >>> merge = scenario_preset("merge", k=3, dim=2, seed=1)
    >>> sum(merge.alive(0)), sum(merge.alive(40)), sum(merge.alive(95))
    (3, 4, 3)
    """
    if name not in PRESETS:
        raise ScenarioError(f"scenario: unknown preset {name!r} (presets: {', '.join(PRESETS)})")
    for what, value in (("k", k), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ScenarioError(f"scenario: {what} must be an integer of 1 or more, got {value!r}")
    rng = np.random.default_rng([seed, 0x5CE])
    extra = 1 if name in ("events", "merge") else 0
    places = _spread_positions(rng, k + extra * 2, dim, std)  # the last: where centre 0 jumps to
    drifts = _unit_directions(rng, k + extra, dim) * (0.0 if name == "static" else speed)
    centres: list[dict[str, Any]] = [{"at": places[i].tolist(), "drift": np.round(drifts[i], 6).tolist()}
                                     for i in range(k)]
    if name == "merge":
        return parse_scenario({"dim": dim, "std": std, "centres": _merging(places, k, dim)})
    if name == "events":
        centres[0]["jumps"] = [{"t": 60, "to": places[k + 1].tolist()}]
        centres.append({"at": places[k].tolist(), "drift": np.round(drifts[k], 6).tolist(), "appear": 90})
        if k >= 2:
            centres[1]["die"] = 120
    return parse_scenario({"dim": dim, "std": std, "centres": centres})


def load_scenario(value: str | Mapping[str, Any] | None, *, k: int = 3, dim: int = 2, seed: int = 42) -> Scenario:
    """A preset name (``k``, ``dim``, ``seed`` place it), a scenario as JSON text or a dict, or None for
    ``"events"``: what a ``--scenario`` flag or a gin setting holds."""
    if value is None:
        return scenario_preset("events", k=k, dim=dim, seed=seed)
    if isinstance(value, str) and not value.lstrip().startswith("{"):
        return scenario_preset(value.strip(), k=k, dim=dim, seed=seed)
    return parse_scenario(value)


# ---------------------------------------------------------------------- the stream
class PointsSource:
    """Points from a :class:`Scenario`'s mixture, ``rate`` a second of stream time; see the module docstring."""

    def __init__(self, scenario: Scenario, *, seed: int = 42, rate: float = 100.0, start: datetime = DEFAULT_START,
                 first_id: int = 0) -> None:
        if not isinstance(scenario, Scenario):
            raise TypeError(f"scenario must be a Scenario (see parse_scenario), got {type(scenario).__name__}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"rate must be a positive number of points per second of stream time, got {rate!r}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.scenario, self.seed, self.rate, self.first_id = scenario, seed, float(rate), int(first_id)
        self.start_ms = int(start.timestamp() * 1000)
        self._weights = np.array([c.weight for c in scenario.centres])
        self._appear = np.array([c.appear for c in scenario.centres])
        self._die = np.array([math.inf if c.die is None else c.die for c in scenario.centres])

    def generate(self, n: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield ``n`` points (forever if None), from the start of this seed's stream."""
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"n must be an integer of 0 or more, got {n!r}")
        return self._points(n)

    def arrays(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The first ``n`` points as arrays: stream times (seconds) ``(n,)``, coordinates ``(n, dim)`` and
        truths ``(n,)``; the same points :meth:`generate` yields, for tests and benchmarks."""
        rng, chunks = np.random.default_rng([self.seed, 1]), []
        for offset in range(0, n, _CHUNK):
            chunks.append(self._chunk(rng, offset))
        if not chunks:
            return np.zeros(0), np.zeros((0, self.scenario.dim)), np.zeros(0, dtype=np.int64)
        t, x, truth = (np.concatenate(parts) for parts in zip(*chunks, strict=True))
        return t[:n], x[:n], truth[:n]

    def _chunk(self, rng: np.random.Generator, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = (offset + np.arange(_CHUNK)) / self.rate
        # the first draws of the chunk pick the centres, the rest are the noise: fixed shapes, fixed order
        pick, noise = rng.random(_CHUNK), rng.standard_normal((_CHUNK, self.scenario.dim))
        alive = (t[:, None] >= self._appear) & (t[:, None] < self._die)
        shares = alive * self._weights
        cumulative = np.cumsum(shares, axis=1) / shares.sum(axis=1, keepdims=True)
        truth = np.minimum((pick[:, None] >= cumulative).sum(axis=1), len(self._weights) - 1)
        x = np.empty((_CHUNK, self.scenario.dim))
        for index, centre in enumerate(self.scenario.centres):
            mine = truth == index
            if mine.any():
                x[mine] = centre.position(t[mine]) + centre.std * noise[mine]
        return t, x, truth.astype(np.int64)

    def _points(self, n: int | None) -> Iterator[dict[str, Any]]:
        rng, offset = np.random.default_rng([self.seed, 1]), 0
        while n is None or offset < n:
            t, x, truth = self._chunk(rng, offset)
            rows, labels = x.tolist(), truth.tolist()
            for i in range(_CHUNK if n is None else min(_CHUNK, n - offset)):
                yield {"id": self.first_id + offset + i, "ts": self._timestamp(float(t[i])), "x": rows[i],
                       "truth": labels[i]}
            offset += _CHUNK

    def _timestamp(self, seconds: float) -> str:
        ms = self.start_ms + round(seconds * 1000)
        moment = datetime.fromtimestamp(ms // 1000, UTC)
        return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def points_payloads(n: int | None = None, *, seed: int = 42, k: int = 3, dim: int = 2, rate: float = 100.0,
                    scenario: str | Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """``n`` points (forever if None) for ``ssp produce --source points``: the scenario (a preset name,
    JSON text or a dict; default the ``events`` preset) with ``k`` centres in ``dim`` dimensions placed by
    ``seed``, ``rate`` points a second of stream time.

    >>> [p["truth"] for p in points_payloads(5, seed=3, k=2, dim=1, scenario="static")]
    [0, 0, 0, 0, 1]
    """
    return PointsSource(load_scenario(scenario, k=k, dim=dim, seed=seed), seed=seed, rate=rate).generate(n)

"""Generated user activity with planted personas, and the truth of who is which.

Each user follows one persona: how active they are, what they do (post, view, like, comment, share),
at what hour, how long their sessions run and how much of it is news. Activity is heavy-tailed, as real
activity is: a user's event count is Poisson around the persona's mean times a log-normal factor, so a
few users do most of it. The same seed gives the same events, byte for byte.

>>> events, truth = generate_activity(users=6, mean_events=20, personas=3, seed=1)
>>> sorted(events.columns)
['day', 'event', 'event_time', 'session_id', 'topic', 'user_id']
>>> truth.persona.tolist()
['lurker', 'night_poster', 'news_sharer', 'lurker', 'night_poster', 'news_sharer']
>>> len(events) == len(generate_activity(users=6, mean_events=20, personas=3, seed=1)[0])
True
>>> generate_activity(users=6, personas=9)
Traceback (most recent call last):
...
ValueError: personas must be between 2 and 6 (the planted personas: lurker, night_poster, news_sharer, power_user, commenter, liker), got 9
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

EVENTS = ("post", "view", "like", "comment", "share")
TOPICS = ("news", "sport", "tech", "music", "food", "travel", "politics", "games")
START = np.datetime64("2026-01-05T00:00:00", "us")  # a Monday
EVENT_COLUMNS = ("user_id", "event_time", "event", "session_id", "topic", "day")


@dataclass(frozen=True)
class Persona:
    """How one kind of user behaves."""

    name: str
    activity: float  # events relative to the mean
    mix: tuple[float, float, float, float, float]  # P(post, view, like, comment, share)
    hour: float  # the hour of day most of their events fall around
    hour_spread: float  # hours (standard deviation, wrapped around the day)
    news: float  # P(an event is about news)
    session_length: float  # events per session, on average


PERSONAS = (
    Persona("lurker", 0.6, (0.02, 0.88, 0.07, 0.02, 0.01), 20.0, 2.5, 0.2, 9.0),
    Persona("night_poster", 1.0, (0.55, 0.20, 0.12, 0.10, 0.03), 2.0, 1.5, 0.1, 3.0),
    Persona("news_sharer", 1.0, (0.10, 0.30, 0.07, 0.05, 0.48), 8.0, 2.0, 0.85, 3.0),
    Persona("power_user", 4.0, (0.25, 0.30, 0.25, 0.15, 0.05), 14.0, 4.0, 0.25, 15.0),
    Persona("commenter", 1.5, (0.05, 0.25, 0.12, 0.55, 0.03), 17.0, 3.0, 0.3, 5.0),
    Persona("liker", 1.2, (0.02, 0.40, 0.55, 0.02, 0.01), 12.0, 3.0, 0.1, 12.0),
)


def personas_used(count: int) -> tuple[Persona, ...]:
    """The first ``count`` planted personas."""
    if not 2 <= count <= len(PERSONAS):
        raise ValueError(f"personas must be between 2 and {len(PERSONAS)} (the planted personas: "
                         f"{', '.join(p.name for p in PERSONAS)}), got {count}")
    return PERSONAS[:count]


def generate_activity(users: int, mean_events: float = 20.0, personas: int = 5, seed: int = 42, days: int = 7,
                      first_user: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``users`` users' events (one row per event, :data:`EVENT_COLUMNS`) and the truth (user_id, persona).

    Users ``first_user .. first_user + users - 1``; user ``u`` follows persona ``u % personas``, so any
    slice of users has them all. The random stream depends on the seed and ``first_user`` only, so a
    large population is generated slice by slice with the same result as at once.
    """
    if users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if not mean_events > 0:
        raise ValueError(f"mean events per user must be above 0, got {mean_events}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    kinds = personas_used(personas)
    rng = np.random.default_rng([seed, first_user])
    user_ids = np.arange(first_user, first_user + users, dtype=np.int64)
    persona_of = (user_ids % len(kinds)).astype(np.int64)
    table = _persona_table(kinds)
    # heavy tails: Poisson around a log-normal multiple of the persona's mean, at least 3 events
    scale = rng.lognormal(mean=-0.18, sigma=0.6, size=users)
    counts = np.maximum(rng.poisson(mean_events * table["activity"][persona_of] * scale), 3)
    owner = np.repeat(np.arange(users), counts)
    persona = persona_of[owner]
    n = len(owner)
    cumulative = np.cumsum(table["mix"], axis=1)[persona]
    event = (rng.random(n)[:, None] > cumulative).sum(axis=1).clip(0, len(EVENTS) - 1)
    hour = (table["hour"][persona] + rng.normal(0.0, 1.0, n) * table["hour_spread"][persona]) % 24.0
    day = rng.integers(0, days, n)
    micros = ((day * 24.0 + hour) * 3600e6).astype(np.int64)
    is_news = rng.random(n) < table["news"][persona]
    topic = np.where(is_news, 0, rng.integers(1, len(TOPICS), n))
    # sessions: each user's events in time order, cut into runs of about the persona's session length
    order = np.argsort(owner * np.int64(days * 24 * 3600 * 10**6) + micros)
    owner, event, micros, topic, day = owner[order], event[order], micros[order], topic[order], day[order]
    rank = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    length = np.maximum(rng.poisson(table["session_length"][persona_of]), 1)
    session = user_ids[owner] * 100_000 + rank // length[owner]
    times = START + micros.astype("timedelta64[us]")
    events = pd.DataFrame({
        "user_id": user_ids[owner],
        "event_time": pd.to_datetime(times).tz_localize("UTC"),
        "event": pd.Categorical.from_codes(event, EVENTS),
        "session_id": session,
        "topic": pd.Categorical.from_codes(topic, TOPICS),
        "day": pd.Categorical.from_codes(day, [str(START.astype("datetime64[D]") + d) for d in range(days)]),
    })
    truth = pd.DataFrame({"user_id": user_ids, "persona": [kinds[i].name for i in persona_of]})
    return events, truth


def _persona_table(kinds: tuple[Persona, ...]) -> dict[str, np.ndarray]:
    return {
        "activity": np.array([p.activity for p in kinds]),
        "mix": np.array([np.asarray(p.mix) / sum(p.mix) for p in kinds]),
        "hour": np.array([p.hour for p in kinds]),
        "hour_spread": np.array([p.hour_spread for p in kinds]),
        "news": np.array([p.news for p in kinds]),
        "session_length": np.array([p.session_length for p in kinds]),
    }


def activity_slices(users: int, slice_users: int, **options) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """:func:`generate_activity` for ``users`` users, ``slice_users`` at a time (bounded memory)."""
    for first in range(0, users, slice_users):
        yield generate_activity(min(slice_users, users - first), first_user=first, **options)


def event_records(events: pd.DataFrame) -> Iterator[dict]:
    """The events as JSON-ready records for Kafka (``event_time`` as ISO 8601 text, ``id`` for the key)."""
    times = events["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for index, (user, when, event, session, topic) in enumerate(zip(
            events["user_id"], times, events["event"], events["session_id"], events["topic"], strict=True)):
        yield {"id": f"{user}-{index}", "user_id": int(user), "event_time": when, "event": event,
               "session_id": int(session), "topic": topic}

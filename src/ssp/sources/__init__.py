"""Tweet sources.

A source is any iterator of raw payloads: X API v1.1 status dicts, X API v2
``{"data": ..., "includes": ...}`` dicts, Jetstream post events, or ``bytes`` for a record that is not valid
JSON (the stream's dead-letter handling records those). Sources are plain Python;
Kafka, rate limiting and keying by tweet id belong to the producer.

* :mod:`ssp.sources.synthetic` -- a seeded, realistic mix of tweets, with labels.
* :mod:`ssp.sources.replay` -- JSON/JSONL files recorded earlier.
* :mod:`ssp.sources.twitter` -- the X API v2 filtered stream, via tweepy.
* :mod:`ssp.sources.bluesky` -- public Bluesky posts, live from Jetstream (free, no account), with a
  resume cursor.

The AI keyword list and its matcher live in :mod:`ssp.text` (the producer, the labelling
functions and the synthetic source all use them); they are importable from here too.
"""

from __future__ import annotations

from ssp.text import (
    KEYWORDS_FILE_NAME,
    KeywordMatcher,
    default_keywords_path,
    load_ai_keywords,
    matches_ai_keywords,
)

__all__ = [
    "KEYWORDS_FILE_NAME",
    "KeywordMatcher",
    "default_keywords_path",
    "load_ai_keywords",
    "matches_ai_keywords",
]

"""Which AI posts are worth reposting: the rules as a pure function, and the query that feeds it.

A candidate is a row of ``ai_tweets_<v>`` on the platform being reposted to, with at least one link.
:func:`choose` applies the rules in order and says why a post is left out:

1. ``below_threshold`` -- P(AI) under the minimum (``--min-prob``, else the threshold in the model card
   of the version that scored it: precision rules the defaults, reposting junk is worse than nothing);
2. ``blocked_domain`` -- a link's domain (or a parent domain) is on the blocklist;
3. ``already_decided`` -- the target (a retweet's original, for X) has a decision already;
4. ``same_link_recently`` -- a link was reposted within the window, or by an earlier candidate now.

>>> from datetime import UTC, datetime
>>> def post(i, prob, urls, target=None):
...     return Candidate(i, "x", target or str(i), None, "t", tuple(urls), prob, 1, "ai_tweets_0",
...                      datetime(2026, 1, 1, tzinfo=UTC), "u")
>>> chosen, left_out = choose(
...     [post(1, 0.99, ["https://arxiv.org/abs/1"]), post(2, 0.5, ["https://a.org/"]),
...      post(3, 0.97, ["https://bit.ly/x"]), post(4, 0.98, ["https://arxiv.org/abs/1"]),
...      post(5, 0.99, ["https://b.org/"], target="1"), post(6, 0.96, ["https://c.org/"])],
...     min_prob=lambda version: 0.9, blocked_domains={"bit.ly"}, taken=set(), recent_links={"https://c.org/"})
>>> [c.tweet_id for c in chosen], [(c.tweet_id, why) for c, why in left_out]
([1], [(2, 'below_threshold'), (3, 'blocked_domain'), (4, 'same_link_recently'), (5, 'already_decided'), \
(6, 'same_link_recently')])
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ssp.storage.tables import validate_identifier
from ssp.text import link_domain

__all__ = ["REASONS", "Candidate", "candidate_by_id", "choose", "domain_blocked", "fetch_candidates"]

REASONS = ("below_threshold", "blocked_domain", "already_decided", "same_link_recently")


@dataclass(frozen=True)
class Candidate:
    """An AI post with links, as a repost would name it."""

    tweet_id: int
    platform: str
    target: str  # X: the tweet id to retweet (a retweet's original); Bluesky: the post's AT URI
    target_cid: str | None
    text: str
    urls: tuple[str, ...]
    ai_prob: float
    model_version: int
    source_table: str
    created_at: datetime
    author: str | None


def domain_blocked(url: str, blocked: Collection[str]) -> bool:
    """Whether ``url``'s domain, or a domain it is under, is in ``blocked``.

    >>> domain_blocked("https://news.spam.example/x", {"spam.example"}), domain_blocked("https://ok.org", {"k.org"})
    (True, False)
    """
    domain = link_domain(url)
    parts = domain.split(".")
    return any(".".join(parts[index:]) in blocked for index in range(len(parts)))


def choose(candidates: Iterable[Candidate], *, min_prob: Callable[[int], float], blocked_domains: Collection[str],
           taken: Collection[str], recent_links: Collection[str]) -> tuple[list[Candidate], list[tuple[Candidate, str]]]:
    """The candidates to repost, in the given order, and the others with the first rule that left each out."""
    chosen: list[Candidate] = []
    left_out: list[tuple[Candidate, str]] = []
    links = set(recent_links)
    targets = set(taken)
    blocked = {domain.lower() for domain in blocked_domains}
    for candidate in candidates:
        if candidate.ai_prob < min_prob(candidate.model_version):
            reason = "below_threshold"
        elif any(domain_blocked(url, blocked) for url in candidate.urls):
            reason = "blocked_domain"
        elif candidate.target in targets:
            reason = "already_decided"
        elif links.intersection(candidate.urls):
            reason = "same_link_recently"
        else:
            chosen.append(candidate)
            targets.add(candidate.target)
            links.update(candidate.urls)
            continue
        left_out.append((candidate, reason))
    return chosen, left_out


# what a repost names: a Bluesky post's AT URI, an X retweet's original, else the tweet itself
_TARGET_SQL = "CASE WHEN platform = 'bluesky' THEN post_uri ELSE COALESCE(retweet_of, id)::text END"
_CANDIDATE_COLUMNS = (f"id, platform, {_TARGET_SQL} AS target, post_cid, text, urls, ai_prob, model_version, "
                      "created_at, user_screen_name")


def _candidate(row, table: str) -> Candidate:
    return Candidate(row.id, row.platform, row.target, row.post_cid, row.text, tuple(row.urls), float(row.ai_prob),
                     int(row.model_version), table, row.created_at, row.user_screen_name)


def fetch_candidates(conn: Connection, ai_table: str, platform: str, ledger_table: str, *, limit: int,
                     min_prob: float = 0.0, exclude_decided: bool = True,
                     before: tuple[datetime, int] | None = None) -> list[Candidate]:
    """AI posts on ``platform`` with at least one link and P(AI) >= ``min_prob``, newest first, without a real
    decision in the ledger yet (unless ``exclude_decided`` is False)."""
    validate_identifier(ai_table, "AI tweets table name")
    validate_identifier(ledger_table, "reposts table name")
    where = ["platform = :platform", "cardinality(urls) > 0", "ai_prob >= CAST(:min_prob AS REAL)",
             f"{_TARGET_SQL} IS NOT NULL"]
    params: dict = {"platform": platform, "min_prob": min_prob, "limit": limit}
    if exclude_decided:
        where.append(f"NOT EXISTS (SELECT 1 FROM {ledger_table} r WHERE r.platform = a.platform AND NOT r.dry_run "
                     f"AND r.target = {_TARGET_SQL})")
    if before is not None:
        where.append("(created_at, id) < (:before_at, :before_id)")
        params |= {"before_at": before[0], "before_id": before[1]}
    rows = conn.execute(text(f"SELECT {_CANDIDATE_COLUMNS} FROM {ai_table} a WHERE {' AND '.join(where)} "
                             "ORDER BY created_at DESC, id DESC LIMIT :limit"), params)
    return [_candidate(row, ai_table) for row in rows]


def candidate_by_id(conn: Connection, ai_table: str, tweet_id: int) -> Candidate | None:
    """One post of ``ai_table`` as a candidate, whatever its links or probability (the caller checks)."""
    validate_identifier(ai_table, "AI tweets table name")
    row = conn.execute(text(f"SELECT {_CANDIDATE_COLUMNS} FROM {ai_table} WHERE id = :id"), {"id": tweet_id}).first()
    return None if row is None else _candidate(row, ai_table)

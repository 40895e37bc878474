"""The ``reposts`` table: every repost decision, and the record that keeps a crash from reposting twice.

One row per (platform, target, dry_run): ``target`` is what a repost names (an X tweet id, the original's
for a retweet; a Bluesky AT URI). A row's ``status`` moves only forward::

    approved --claim--> in_flight --> reposted | failed
        ^                   |
        +---- released -----+   (401/403, a rate-limit wait too long, a check that found nothing)
    skipped                       (a reviewer, or a rule: same link in the window, blocked domain)
    dry_run                       (what --dry-run would have reposted; dry_run rows never block a real one)

The claim (``approved`` -> ``in_flight``, with the Bluesky record key the call will use) is committed
before the platform is called, the outcome after it. A run that finds ``in_flight`` rows (the previous
run died between the two) asks the platform whether the repost exists before anything is retried, so
a crash never reposts twice. Two runs at once cannot claim the same row: the claim is a conditional
UPDATE.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.engine import Connection

from ssp.storage.tables import validate_identifier

__all__ = ["STATUSES", "Ledger", "LedgerRow", "reposts_table"]

STATUSES = ("approved", "skipped", "in_flight", "reposted", "failed", "dry_run")
# the rows that hold a target: a second decision on it is not taken
_TAKEN = ("approved", "skipped", "in_flight", "reposted", "failed")
# what counts against the per-hour limit and the link window
_DONE_OR_GOING = ("in_flight", "reposted")
_COLUMNS = ("repost_id", "platform", "target", "target_cid", "tweet_id", "source_table", "model_version", "ai_prob",
            "text", "urls", "status", "dry_run", "decided_by", "reason", "decided_at", "rkey", "attempts",
            "attempted_at", "finished_at", "answer", "repost_ref")


def reposts_table(name: str = "reposts", metadata: MetaData | None = None) -> Table:
    """The ledger; ``name`` is validated."""
    validate_identifier(name, "reposts table name")
    return Table(
        name, metadata or MetaData(),
        Column("repost_id", BigInteger, primary_key=True, autoincrement=True),
        Column("platform", Text, nullable=False),
        Column("target", Text, nullable=False),
        Column("target_cid", Text),
        Column("tweet_id", BigInteger, nullable=False),
        Column("source_table", Text, nullable=False),
        Column("model_version", BigInteger),
        Column("ai_prob", Float(precision=24)),
        Column("text", Text, nullable=False),
        Column("urls", ARRAY(Text), nullable=False),
        Column("status", Text, nullable=False),
        Column("dry_run", Boolean, nullable=False, server_default="false"),
        Column("decided_by", Text, nullable=False),
        Column("reason", Text),
        Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()),
        Column("rkey", Text),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("attempted_at", DateTime(timezone=True)),
        Column("finished_at", DateTime(timezone=True)),
        Column("answer", Text),
        Column("repost_ref", Text),
        UniqueConstraint("platform", "target", "dry_run", name=f"{name}_target_key"),
        Index(f"{name}_status_idx", "platform", "status"),
    )


@dataclass(frozen=True)
class LedgerRow:
    repost_id: int
    platform: str
    target: str
    target_cid: str | None
    tweet_id: int
    source_table: str
    model_version: int | None
    ai_prob: float | None
    text: str
    urls: tuple[str, ...]
    status: str
    dry_run: bool
    decided_by: str
    reason: str | None
    decided_at: datetime
    rkey: str | None
    attempts: int
    attempted_at: datetime | None
    finished_at: datetime | None
    answer: str | None
    repost_ref: str | None

    @classmethod
    def from_row(cls, row) -> LedgerRow:
        values = dict(row._mapping)
        values["urls"] = tuple(values["urls"] or ())
        return cls(**values)


class Ledger:
    """The SQL of the ledger table ``name``; each method runs on a connection the caller commits."""

    def __init__(self, name: str = "reposts") -> None:
        self.name = validate_identifier(name, "reposts table name")
        self.table = reposts_table(name)

    def _rows(self, conn: Connection, where: str, params: dict, order: str = "repost_id", limit: int | None = None):
        sql = f"SELECT {', '.join(_COLUMNS)} FROM {self.name} WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT :limit"
            params = params | {"limit": limit}
        return [LedgerRow.from_row(row) for row in conn.execute(text(sql), params)]

    def decide(self, conn: Connection, candidate, status: str, decided_by: str, reason: str | None = None,
               dry_run: bool = False) -> int | None:
        """Record a decision on ``candidate`` (a :class:`ssp.repost.candidates.Candidate`); the row's id, or None
        when the target already has a decision (a dry run's row is refreshed instead)."""
        if status not in STATUSES:
            raise ValueError(f"unknown repost status {status!r}")
        conflict = ("DO UPDATE SET decided_at = clock_timestamp(), reason = EXCLUDED.reason, "
                    "ai_prob = EXCLUDED.ai_prob" if dry_run else "DO NOTHING")
        row = conn.execute(text(
            f"INSERT INTO {self.name} (platform, target, target_cid, tweet_id, source_table, model_version, ai_prob, "
            "text, urls, status, dry_run, decided_by, reason) VALUES (:platform, :target, :cid, :tweet_id, :source, "
            ":model_version, :ai_prob, :text, :urls, :status, :dry_run, :decided_by, :reason) "
            f"ON CONFLICT (platform, target, dry_run) {conflict} RETURNING repost_id"),
            {"platform": candidate.platform, "target": candidate.target, "cid": candidate.target_cid,
             "tweet_id": candidate.tweet_id, "source": candidate.source_table,
             "model_version": candidate.model_version, "ai_prob": candidate.ai_prob, "text": candidate.text,
             "urls": list(candidate.urls), "status": status, "dry_run": dry_run, "decided_by": decided_by,
             "reason": reason}).first()
        return None if row is None else int(row[0])

    def taken_targets(self, conn: Connection, platform: str, targets: Sequence[str]) -> set[str]:
        """Which of ``targets`` already have a (real) decision."""
        if not targets:
            return set()
        rows = conn.execute(text(f"SELECT target FROM {self.name} WHERE platform = :platform AND NOT dry_run "
                                 "AND target = ANY(:targets)"), {"platform": platform, "targets": list(targets)})
        return {row[0] for row in rows}

    def with_status(self, conn: Connection, platform: str, status: str, limit: int | None = None) -> list[LedgerRow]:
        return self._rows(conn, "platform = :platform AND status = :status AND NOT dry_run",
                          {"platform": platform, "status": status}, limit=limit)

    def claim(self, conn: Connection, repost_id: int, rkey: str) -> LedgerRow | None:
        """``approved`` -> ``in_flight`` (once; a retry keeps its first record key); None if another run has it."""
        rows = conn.execute(text(
            f"UPDATE {self.name} SET status = 'in_flight', attempts = attempts + 1, attempted_at = clock_timestamp(), "
            "rkey = COALESCE(rkey, :rkey) WHERE repost_id = :id AND status = 'approved' AND NOT dry_run "
            f"RETURNING {', '.join(_COLUMNS)}"), {"id": repost_id, "rkey": rkey}).all()
        return LedgerRow.from_row(rows[0]) if rows else None

    def retry(self, conn: Connection, repost_id: int) -> None:
        """Count one more attempt of an in-flight row."""
        conn.execute(text(f"UPDATE {self.name} SET attempts = attempts + 1, attempted_at = clock_timestamp() "
                          "WHERE repost_id = :id AND status = 'in_flight'"), {"id": repost_id})

    def finish(self, conn: Connection, repost_id: int, status: str, answer: str, repost_ref: str | None = None) -> None:
        """``in_flight`` -> ``reposted`` or ``failed``, with the platform's answer."""
        if status not in ("reposted", "failed"):
            raise ValueError(f"a repost finishes as reposted or failed, not {status!r}")
        conn.execute(text(f"UPDATE {self.name} SET status = :status, answer = :answer, repost_ref = :ref, "
                          "finished_at = clock_timestamp() WHERE repost_id = :id AND status = 'in_flight'"),
                     {"id": repost_id, "status": status, "answer": answer[:4000], "ref": repost_ref})

    def release(self, conn: Connection, repost_id: int, reason: str) -> None:
        """``in_flight`` -> ``approved``: the platform did nothing, a later run tries again."""
        conn.execute(text(f"UPDATE {self.name} SET status = 'approved', reason = :reason "
                          "WHERE repost_id = :id AND status = 'in_flight'"), {"id": repost_id, "reason": reason[:4000]})

    def skip_approved(self, conn: Connection, repost_id: int, decided_by: str, reason: str) -> bool:
        """``approved`` -> ``skipped`` (a reviewer's approval that a rule now refuses)."""
        rows = conn.execute(text(f"UPDATE {self.name} SET status = 'skipped', decided_by = :who, reason = :reason, "
                                 "decided_at = clock_timestamp() WHERE repost_id = :id AND status = 'approved' "
                                 "RETURNING repost_id"), {"id": repost_id, "who": decided_by, "reason": reason}).all()
        return bool(rows)

    def count_since(self, conn: Connection, platform: str, since: datetime) -> int:
        """Reposts made or under way since ``since``: what the per-hour limit counts."""
        return int(conn.execute(text(
            f"SELECT count(*) FROM {self.name} WHERE platform = :platform AND NOT dry_run AND status = ANY(:statuses) "
            "AND attempted_at >= :since"), {"platform": platform, "statuses": list(_DONE_OR_GOING),
                                            "since": since}).scalar_one())

    def links_since(self, conn: Connection, platform: str, since: datetime) -> set[str]:
        """The links of reposts made or under way since ``since``: the link window."""
        rows = conn.execute(text(
            f"SELECT DISTINCT unnest(urls) FROM {self.name} WHERE platform = :platform AND NOT dry_run "
            "AND status = ANY(:statuses) AND attempted_at >= :since"),
            {"platform": platform, "statuses": list(_DONE_OR_GOING), "since": since})
        return {row[0] for row in rows}

    def history(self, conn: Connection, limit: int, statuses: Iterable[str] = STATUSES) -> list[LedgerRow]:
        """The newest decisions first."""
        return self._rows(conn, "status = ANY(:statuses)", {"statuses": list(statuses)},
                          order="decided_at DESC, repost_id DESC", limit=limit)

"""One ``ssp repost`` run: recover interrupted reposts, decide, repost within the limits, record everything.

The order of a run (each step commits before the next, see :mod:`ssp.repost.ledger`):

1. rows left ``in_flight`` by a run that died are checked against the platform: found, they become
   ``reposted``; not found, ``approved`` again, to be retried below;
2. ``--mode auto``: the candidates (:func:`ssp.repost.candidates.choose`) are recorded as ``approved`` by
   the rule, those a rule leaves out as ``skipped`` with the rule's name. ``--mode review``: the rows
   reviewers approved in the dashboard, the link and domain rules checked again;
3. each approved row is claimed, posted and finished, at most ``max_per_hour`` in any hour, waiting out
   the platform's rate limits (never longer than ``max_wait_seconds``: then the run ends and says so).

With ``dry_run`` (the default) nothing is posted and no credentials are needed: each post that would be
reposted is printed with its reason and recorded as a ``dry_run`` row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from ssp.errors import SspError
from ssp.repost.candidates import choose, domain_blocked, fetch_candidates
from ssp.repost.clients import CredentialsError, OutcomeUnknown, RateLimited, Rejected, Unavailable, new_rkey
from ssp.repost.ledger import Ledger, LedgerRow

log = logging.getLogger(__name__)

__all__ = ["RepostResult", "RepostSettings", "run_repost", "threshold_lookup"]


class StopRun(SspError, RuntimeError):
    """The run cannot go on now (a rate-limit wait too long, an outcome that cannot be checked)."""


@dataclass(frozen=True)
class RepostSettings:
    platform: str
    ai_table: str
    ledger_table: str
    mode: str = "review"
    dry_run: bool = True
    min_prob: Callable[[int], float] = lambda version: 0.9
    min_prob_text: str = "0.9"
    max_per_hour: int = 30
    link_window: timedelta = timedelta(hours=24)
    blocked_domains: tuple[str, ...] = ()
    max_attempts: int = 3
    max_wait_seconds: float = 900.0
    batch: int = 500  # candidates looked at per run


@dataclass
class RepostResult:
    platform: str
    mode: str
    dry_run: bool
    reposted: int = 0
    would_repost: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    recovered: int = 0
    left: int = 0
    waited_seconds: float = 0.0
    stopped: str | None = None

    def line(self) -> str:
        """One summary line.

        >>> RepostResult("bluesky", "auto", True, would_repost=2, skipped={"blocked_domain": 1}).line()
        'dry run on bluesky (auto mode): 2 posts would be reposted, 1 skipped (1 blocked_domain); nothing was posted'
        """
        skipped = sum(self.skipped.values())
        why = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        skipped_text = f"{skipped} skipped" + (f" ({why})" if why else "")
        if self.dry_run:
            return (f"dry run on {self.platform} ({self.mode} mode): {self.would_repost} posts would be reposted, "
                    f"{skipped_text}; nothing was posted")
        text = (f"reposted {self.reposted} posts on {self.platform} ({self.mode} mode), {self.failed} failed, "
                f"{skipped_text}")
        if self.recovered:
            text += f", {self.recovered} interrupted reposts checked on the platform"
        if self.left:
            text += f", {self.left} approved left for a later run"
        if self.waited_seconds:
            text += f", {self.waited_seconds:.1f} s waited on rate limits"
        return text + (f"; stopped: {self.stopped}" if self.stopped else "")


def threshold_lookup(fixed: float | None, fallback: float, base_path: Path | None) -> tuple[Callable[[int], float], str]:
    """The minimum P(AI) per model version: ``fixed``, else the version's model card threshold, else ``fallback``."""
    if fixed is not None:
        return (lambda version: fixed), f"{fixed:g} (--min-prob)"
    from ssp.streaming.classify import card_threshold

    cache: dict[int, float] = {}

    def lookup(version: int) -> float:
        if version not in cache:
            threshold = card_threshold(base_path, version)[0] if base_path is not None else None
            cache[version] = fallback if threshold is None else max(threshold, 0.0)
        return cache[version]

    return lookup, f"the model card's threshold (else {fallback:g})"


class _Run:
    def __init__(self, engine: Engine, settings: RepostSettings, client, echo: Callable[[str], None],
                 sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
        self.engine, self.settings, self.client = engine, settings, client
        self.echo, self.sleep, self.clock = echo, sleep, clock
        self.ledger = Ledger(settings.ledger_table)
        self.result = RepostResult(settings.platform, settings.mode, settings.dry_run)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def skip(self, reason: str) -> None:
        self.result.skipped[reason] = self.result.skipped.get(reason, 0) + 1

    # ---------------------------------------------------------------- 1. interrupted runs
    def recover(self) -> None:
        with self.engine.begin() as conn:
            rows = self.ledger.with_status(conn, self.settings.platform, "in_flight")
        for row in rows:
            try:
                done = self.client.already_reposted(row.target, row.rkey)
            except OutcomeUnknown as err:
                raise StopRun(f"cannot check the interrupted repost of {row.target} ({err}); run again later") from err
            with self.engine.begin() as conn:
                if done is not None:
                    self.ledger.finish(conn, row.repost_id, "reposted", f"found after an interrupted run: {done.answer}",
                                       done.ref)
                    self.result.reposted += 1
                else:
                    self.ledger.release(conn, row.repost_id, "an interrupted run: not on the platform, tried again")
            self.result.recovered += 1

    # ---------------------------------------------------------------- 2. decisions
    def decide_auto(self) -> None:
        settings = self.settings
        with self.engine.begin() as conn:
            candidates = fetch_candidates(conn, settings.ai_table, settings.platform, settings.ledger_table,
                                          limit=settings.batch)
            recent = self.ledger.links_since(conn, settings.platform, self.now() - settings.link_window)
        chosen, left_out = choose(candidates, min_prob=settings.min_prob, blocked_domains=settings.blocked_domains,
                                  taken=set(), recent_links=recent)
        with self.engine.begin() as conn:
            for candidate, reason in left_out:
                if reason == "below_threshold":
                    continue  # not a candidate at all: no decision to record
                self.skip(reason)
                if not settings.dry_run:
                    self.ledger.decide(conn, candidate, "skipped", f"rule:{reason}", reason)
            for candidate in chosen:
                why = f"P(AI) {candidate.ai_prob:.3f} >= {settings.min_prob(candidate.model_version):.3f}"
                if settings.dry_run:
                    self.would_repost(conn, candidate, "rule:auto", why)
                else:
                    self.ledger.decide(conn, candidate, "approved", "rule:auto", why)

    def would_repost(self, conn, post, decided_by: str, why: str) -> None:
        self.echo(f"would repost {post.target} ({why}; links: {', '.join(post.urls)}): {post.text[:120]!r}")
        self.ledger.decide(conn, post, "dry_run", decided_by, why, dry_run=True)
        self.result.would_repost += 1

    def check_approved(self, rows: list[LedgerRow]) -> list[LedgerRow]:
        """The approved rows the link and domain rules still allow; the others are skipped (real runs)."""
        settings = self.settings
        with self.engine.begin() as conn:
            links = self.ledger.links_since(conn, settings.platform, self.now() - settings.link_window)
        kept = []
        for row in rows:
            reason = None
            if any(domain_blocked(url, {d.lower() for d in settings.blocked_domains}) for url in row.urls):
                reason = "blocked_domain"
            elif links.intersection(row.urls):
                reason = "same_link_recently"
            if reason is None:
                links.update(row.urls)
                kept.append(row)
                continue
            self.skip(reason)
            if not settings.dry_run:
                with self.engine.begin() as conn:
                    self.ledger.skip_approved(conn, row.repost_id, f"rule:{reason}", f"approved by {row.decided_by}, "
                                              f"then left out by the rule {reason}")
        return kept

    # ---------------------------------------------------------------- 3. reposting
    def wait(self, seconds: float, what: str) -> None:
        if seconds <= 0:
            return
        if seconds > self.settings.max_wait_seconds:
            raise StopRun(f"{what}: the reset is {seconds:.0f} s away, more than RepostConfig.max_wait_seconds "
                          f"({self.settings.max_wait_seconds:.0f}); run again later")
        log.info("%s: waiting %.1f s for the reset", what, seconds)
        self.sleep(seconds)
        self.result.waited_seconds += seconds

    def post_all(self, rows: list[LedgerRow]) -> None:
        settings = self.settings
        for index, row in enumerate(rows):
            with self.engine.begin() as conn:
                made = self.ledger.count_since(conn, settings.platform, self.now() - timedelta(hours=1))
            if made >= settings.max_per_hour:
                self.result.left = len(rows) - index
                self.result.stopped = f"{made} reposts in the last hour, the limit (--max-per-hour)"
                return
            try:
                self.wait(self.client.rate_limit.wait_seconds(), f"{settings.platform} rate limit")
            except StopRun as err:
                self.result.left, self.result.stopped = len(rows) - index, str(err)
                return
            try:
                self.post_one(row)
            except StopRun as err:
                self.result.left, self.result.stopped = len(rows) - index, str(err)
                return

    def post_one(self, row: LedgerRow) -> None:
        with self.engine.begin() as conn:
            claimed = self.ledger.claim(conn, row.repost_id, new_rkey(self.clock))
        if claimed is None:
            return  # another run took it
        attempts = 0
        while True:
            attempts += 1
            try:
                done = self.client.repost(claimed.target, claimed.target_cid, claimed.rkey)
            except RateLimited as err:  # nothing was done: wait for the reset and call again
                attempts -= 1
                self._wait_or_release(claimed, err)
                continue
            except OutcomeUnknown as err:
                done = self._check(claimed, err)
                if done is None and attempts < self.settings.max_attempts:
                    self._retry(claimed.repost_id)
                    continue
                if done is None:
                    self._finish(claimed, "failed", f"no answer after {attempts} attempts: {err.answer}")
                    return
            except Unavailable as err:
                if attempts < self.settings.max_attempts:
                    self._retry(claimed.repost_id)
                    self.sleep(min(30.0, 0.5 * 2 ** attempts))
                    continue
                self._finish(claimed, "failed", err.answer)
                return
            except Rejected as err:
                self._finish(claimed, "failed", err.answer)
                return
            except CredentialsError as err:
                with self.engine.begin() as conn:
                    self.ledger.release(conn, claimed.repost_id, str(err))
                raise
            self._finish(claimed, "reposted", done.answer, done.ref)
            return

    def _wait_or_release(self, row: LedgerRow, err: RateLimited) -> None:
        try:
            self.wait(err.reset_at - self.clock(), f"{self.settings.platform} answered 429")
        except StopRun:
            with self.engine.begin() as conn:
                self.ledger.release(conn, row.repost_id, f"rate limited: {err.answer}")
            raise

    def _check(self, row: LedgerRow, err: OutcomeUnknown):
        """After a call with no answer: did the platform repost? An unanswered check leaves the row in flight."""
        try:
            return self.client.already_reposted(row.target, row.rkey)
        except OutcomeUnknown as again:
            raise StopRun(f"no answer from {self.settings.platform} for {row.target} ({err}) nor for the check "
                          f"({again}); the next run checks it before any retry") from again

    def _retry(self, repost_id: int) -> None:
        with self.engine.begin() as conn:
            self.ledger.retry(conn, repost_id)

    def _finish(self, row: LedgerRow, status: str, answer: str, ref: str | None = None) -> None:
        with self.engine.begin() as conn:
            self.ledger.finish(conn, row.repost_id, status, answer, ref)
        if status == "reposted":
            self.result.reposted += 1
            self.echo(f"reposted {row.target} ({ref or ''})")
        else:
            self.result.failed += 1
            self.echo(f"failed to repost {row.target}: {answer[:200]}")


def run_repost(engine: Engine, settings: RepostSettings, client=None, *, echo: Callable[[str], None] = print,
               sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> RepostResult:
    """One run; ``client`` (from :func:`ssp.repost.clients.make_client`) is needed unless ``settings.dry_run``."""
    from ssp.storage.postgres import ensure_tables, table_exists

    if not settings.dry_run and client is None:
        raise SspError("a repost run that posts needs a platform client")
    if not table_exists(engine, settings.ai_table):
        raise SspError(f"table {settings.ai_table} does not exist: run `ssp classify` for this version first")
    run = _Run(engine, settings, client, echo, sleep, clock)
    ensure_tables(engine, run.ledger.table)
    if not settings.dry_run:
        run.recover()
    if settings.mode == "auto":
        run.decide_auto()
    with engine.begin() as conn:
        approved = run.ledger.with_status(conn, settings.platform, "approved")
    approved = run.check_approved(approved)
    if settings.dry_run:
        with engine.begin() as conn:
            for row in approved:
                run.would_repost(conn, row, row.decided_by, f"approved by {row.decided_by}")
    else:
        run.post_all(approved)
    return run.result

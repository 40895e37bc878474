"""The active-learning loop behind the tagger: model scores for the queue, retraining on new labels.

With a model server, the queue follows the model: a table is scored when the tagger prepares it
(at start-up, or at the first write to a table that appeared later) and the server has a version
the table lacks, and every ``ActiveLearningConfig.retrain_every`` new labels
:class:`ssp.active.retrain.RetrainTrigger` retrains in the background; when the server has loaded
the new version the prepared tables of that dataset version are rescored and the queue re-orders.

This module knows tables only by name, version and oid (:class:`ScoredTable`) and reads through a
:class:`TableSource`, so it needs no web code; the tagger (:mod:`ssp.web.tagger`) drives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Protocol

from ssp.active import queue
from ssp.config import ActiveLearningConfig, TrainConfig

log = logging.getLogger(__name__)

# how long a rescore after a retrain waits for the model server to load the new version
RESCORE_WAIT_SECONDS = 120.0


class ScoredTable(Protocol):
    """A dataset table as the loop sees it (the tagger's TableState is one)."""

    name: str
    version: int
    oid: int


class TableSource(Protocol):
    """Where the loop reads: a database connection, and which tables of a dataset version are in use."""

    def connection(self) -> AbstractContextManager: ...

    def opened_tables(self, version: int) -> list[str]: ...


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ActiveLoop:
    """Model scores for the queue and the retrain loop, when the tagger has a model server.

    Scoring runs in background threads, one per table at a time, so no page waits for the model.
    """

    def __init__(self, database_url: str, data: TableSource, client, al_config: ActiveLearningConfig,
                 train_config: TrainConfig | None = None) -> None:
        self.database_url = database_url
        self.data = data
        self.client = client
        self.al_config = al_config
        self.train_config = train_config  # what a retrain trains (None: gin's TrainConfig)
        self._lock = threading.Lock()
        self._triggers: dict[int, object] = {}
        self._rescoring: dict[str, threading.Thread] = {}
        self._checked: set[tuple[str, int]] = set()
        self.rescore_status: dict[str, dict] = {}

    def opened(self, state: ScoredTable) -> None:
        """First sight of a table (or of a rebuilt one): score it if the server has a version it lacks."""
        self.opened_all([state])

    def opened_all(self, states: Iterable[ScoredTable]) -> bool:
        """:meth:`opened` for many tables at once (the tagger's start-up), one after the other in one background
        thread rather than a thread each; False when there was nothing new to score."""
        states = list(states)
        with self._lock:
            fresh = [s.name for s in states if (s.name, s.oid) not in self._checked]
            self._checked.update((s.name, s.oid) for s in states)
        return bool(fresh) and self._start(fresh, None, "opened")

    def record_labels(self, state: ScoredTable, n: int) -> None:
        from ssp.active.retrain import RetrainTrigger

        if n <= 0 or self.al_config.retrain_every < 1:
            return
        with self._lock:
            trigger = self._triggers.get(state.version)
            if trigger is None:
                version = state.version
                trigger = RetrainTrigger(self.database_url, version, self.al_config.retrain_every,
                                         config=self.train_config,
                                         on_done=lambda outcome: self.retrained(version, outcome))
                self._triggers[state.version] = trigger
        if trigger.record(n):
            log.info("%d new labels on dataset %d: retraining in the background", self.al_config.retrain_every,
                     state.version)

    def retrained(self, dataset_version: int, outcome) -> None:
        """RetrainTrigger's on_done: once the server has the new model version, rescore the version's opened tables."""
        model_version = getattr(outcome, "model_version", None)
        if model_version is None:
            return  # the failure is in the trigger's status
        self._start(self.data.opened_tables(dataset_version), model_version,
                    f"retrained as model version {model_version}")

    def rescore(self, table: str, wait_for: int | None = None, reason: str = "asked") -> bool:
        """Score ``table`` in the background (after the server has ``wait_for`` or a newer version loaded);
        False when a rescore of it is already running."""
        return self._start([table], wait_for, reason)

    def _start(self, tables: list[str], wait_for: int | None, reason: str) -> bool:
        with self._lock:
            tables = [t for t in tables if not ((r := self._rescoring.get(t)) is not None and r.is_alive())]
            if not tables:
                return False
            name = f"ssp-rescore-{tables[0]}" + (f"-and-{len(tables) - 1}-more" if len(tables) > 1 else "")
            thread = threading.Thread(target=self._rescore_all, args=(tables, wait_for, reason), name=name,
                                      daemon=True)
            for table in tables:
                self._rescoring[table] = thread
                self.rescore_status[table] = {**self.rescore_status.get(table, {}), "running": True,
                                              "reason": reason, "started_at": _iso_now(), "error": None}
            thread.start()
            return True

    def _rescore_all(self, tables: list[str], wait_for: int | None, reason: str) -> None:
        for table in tables:
            self._rescore(table, wait_for, reason)

    def wait(self, table: str, timeout: float | None = None) -> None:
        """Block until ``table``'s running rescore (if any) ends: for tests and shutdown."""
        thread = self._rescoring.get(table)
        if thread is not None:
            thread.join(timeout)

    def _rescore(self, table: str, wait_for: int | None, reason: str) -> None:
        status: dict = {"running": False, "reason": reason, "version": None, "rows": None, "error": None}
        try:
            deadline = time.monotonic() + RESCORE_WAIT_SECONDS
            available = self.client.available_version()
            while wait_for is not None and (available is None or available < wait_for):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the model server did not load model version {wait_for} within "
                                       f"{RESCORE_WAIT_SECONDS:.0f} s (it serves {available})")
                time.sleep(0.5)
                available = self.client.available_version()
            with self.data.connection() as conn:
                scored_version = queue.score_version(conn, table)
            if available is not None and available == scored_version and wait_for is None and reason == "opened":
                status.update(version=scored_version, rows=None, skipped="scores are from the served version")
            else:
                rows, version = queue.refresh_scores(self.database_url, table, self.client)
                status.update(version=version, rows=rows)
        except Exception as err:  # shown on the queue page; the tagger goes on with the scores it has
            log.warning("rescoring %s failed: %s", table, err)
            status["error"] = f"{type(err).__name__}: {err}"
        status["finished_at"] = _iso_now()
        with self._lock:
            self.rescore_status[table] = status

    def status(self, state: ScoredTable) -> dict:
        with self._lock:
            trigger = self._triggers.get(state.version)
            rescore = dict(self.rescore_status.get(state.name, {"running": False}))
        retrain = {"enabled": True, **trigger.status()} if trigger is not None else {
            "enabled": True, "labels_since_retrain": 0, "every": self.al_config.retrain_every, "running": False,
            "last_version": None, "last_error": None, "last_finished_at": None}
        if self.al_config.retrain_every < 1:
            retrain = {"enabled": False, "reason": "ActiveLearningConfig.retrain_every is below 1"}
        return {"model_url": self.client.base_url, "retrain": retrain, "rescore": rescore}


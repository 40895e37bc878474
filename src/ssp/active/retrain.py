"""The retrain loop: new gold labels in, a new model version out, picked up by whoever serves it.

Retraining is ordinary training (:func:`ssp.model.train.run_training`) on the dataset's
current labels, the tagger's gold labels first and Snorkel's elsewhere, exported as the next
integer version under the model base path. The model server polls that folder and switches
to the new version on its own, and the classify job asks the server, so nothing has to be
told about the new model.

:class:`RetrainTrigger` is the tagger's side of it: it counts labels and, every ``every``
labels, starts one retrain in a background thread so the annotator never waits for it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from ssp.config import TrainConfig
from ssp.model.train import EpochCallback, TrainSummary, run_training
from ssp.storage.tables import validate_version

logger = logging.getLogger(__name__)

DoneCallback = Callable[[TrainSummary | BaseException], None]


def retrain(database_url: str, version: int, config: TrainConfig | None = None, *,
            on_epoch: EpochCallback | None = None) -> TrainSummary:
    """Train on dataset ``version``'s current gold and Snorkel labels and export the next model version.

    ``config`` defaults to the gin-configured :class:`TrainConfig`; its own ``version`` is
    replaced by ``version``, so one config serves every dataset version.
    """
    version = validate_version(version)
    config = dataclasses.replace(config if config is not None else TrainConfig(), version=version)
    return run_training(database_url, config, on_epoch=on_epoch)


class RetrainTrigger:
    """Counts new labels and retrains in a background thread every ``every`` labels, one retrain at a time.

    The count restarts when a retrain starts, so labels given while it runs count towards the
    next one. A retrain that fails does not give its labels back: the next one, ``every``
    labels later, trains on all labels anyway, and a broken database is not hammered with a
    retrain per label. ``on_done`` gets the :class:`TrainSummary` or the exception, in the
    background thread.
    """

    def __init__(self, database_url: str, version: int, every: int, config: TrainConfig | None = None,
                 on_done: DoneCallback | None = None) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"retrain every must be a whole number of labels, at least 1; got {every!r}")
        self.database_url = database_url
        self.version = validate_version(version)
        self.every = every
        self.config = config
        self.on_done = on_done
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._since = 0
        self._last_version: int | None = None
        self._last_error: str | None = None
        self._last_finished_at: str | None = None

    def record(self, n: int = 1) -> bool:
        """Count ``n`` new labels; True when this call started a retrain (never while one runs)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"the number of new labels must be a whole number, 0 or more; got {n!r}")
        with self._lock:
            self._since += n
            if self._since < self.every or self._is_running():
                return False
            self._since = 0
            self._thread = threading.Thread(target=self._run, name=f"ssp-retrain-v{self.version}", daemon=True)
            self._thread.start()
            return True

    def _is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._is_running()

    def _run(self) -> None:
        outcome: TrainSummary | BaseException
        try:
            outcome = retrain(self.database_url, self.version, self.config)
        except Exception as err:  # reported through status() and on_done; the tagger keeps running
            logger.exception("retraining on dataset %s failed", self.version)
            outcome = err
        with self._lock:
            if isinstance(outcome, TrainSummary):
                self._last_version, self._last_error = outcome.model_version, None
                logger.info("%s", outcome.line())
            else:
                self._last_error = f"{type(outcome).__name__}: {outcome}"
            self._last_finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        if self.on_done is not None:
            try:
                self.on_done(outcome)
            except Exception:  # a broken callback must not hide the retrain's own outcome
                logger.exception("the retrain on_done callback failed")

    def status(self) -> dict:
        """What the tagger shows: labels counted since the last retrain started, and how the last one went."""
        with self._lock:
            return {
                "labels_since_retrain": self._since,
                "every": self.every,
                "running": self._is_running(),
                "last_version": self._last_version,
                "last_error": self._last_error,
                "last_finished_at": self._last_finished_at,
            }

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running retrain (if any) has finished, or ``timeout`` seconds have passed."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

"""A client for TensorFlow Serving's REST API, for every stage that classifies tweets.

It speaks only the documented REST API, so it works against ``tensorflow_model_server`` and
against ``ssp serve``'s own server alike. Texts go out in batches of ``batch_size`` over
pooled keep-alive connections (urllib3 directly: requests' extra layers cost about 0.6 ms
a call, a quarter of a 256-text batch's round trip; the model itself spends 70 µs of CPU a text
in batches of 256, 54 µs in batches of 1,000); a request that fails for a reason that
may pass (no connection, a timeout, a 5xx) is retried with exponential backoff, one that the
server refused (4xx) is not, and what finally fails raises :class:`ModelServerError` naming
the URL and the server's own message.

It needs numpy, urllib3 and orjson only (no TensorFlow), so Spark executors can load it cheaply.

    client = PredictClient("http://127.0.0.1:8501", "naive_text_clf")
    client.wait_until_available(60)
    probs = client.predict(["new LLM paper on arXiv", "great game tonight"])
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from ssp.errors import SspError

if TYPE_CHECKING:
    from ssp.config import ServeConfig

VERSION_HEADER = "X-Ssp-Model-Version"  # sent by ssp's own server; TF Serving's answer has no version
_RETRY_STATUSES = frozenset({500, 502, 503, 504})


def request_slices(lengths: Sequence[int], batch_size: int, max_chars: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each request for texts of these lengths: at most ``batch_size`` texts, and
    texts of at most ``max_chars`` characters in all unless one text alone is longer.

    >>> request_slices([10] * 5, 2, 100)
    [(0, 2), (2, 4), (4, 5)]
    >>> request_slices([60, 50, 500, 10, 10], 10, 100)
    [(0, 1), (1, 2), (2, 3), (3, 5)]
    >>> request_slices([], 4, 100)
    []
    """
    slices, start, chars = [], 0, 0
    for index, length in enumerate(lengths):
        if index > start and (index - start == batch_size or chars + length > max_chars):
            slices.append((start, index))
            start, chars = index, 0
        chars += length
    if start < len(lengths):
        slices.append((start, len(lengths)))
    return slices


class ModelServerError(SspError, RuntimeError):
    """A call to the model server failed; the message names the URL and the server's reason."""

    def __init__(self, message: str, url: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status_code = status_code


class ClientConfigError(SspError, ValueError):
    """A client set up with a setting it cannot work with (a URL that is not HTTP, a timeout of 0, ...)."""


@dataclass(eq=False)
class PredictClient:
    """Batched, retrying calls to one model of a TF-Serving-compatible REST server."""

    base_url: str
    model_name: str
    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.2
    batch_size: int = 1000
    # a request also ends before its texts pass this many characters (a batch of 25,000-character note
    # tweets would pass the server's 16 MiB body limit, a 413 no retry can cure); one longer text goes alone
    max_request_chars: int = 1_000_000
    signature_name: str | None = None
    output_name: str = "ai_prob"
    pool_size: int = 8

    def __post_init__(self) -> None:
        for wrong, problem in (
            (not self.base_url.startswith(("http://", "https://")),
             f"model server URL {self.base_url!r} must start with http:// or https://"),
            (not self.model_name or "/" in self.model_name or ":" in self.model_name,
             f"model name {self.model_name!r} must be non-empty without '/' or ':'"),
            (self.timeout <= 0, f"timeout must be above 0 seconds, got {self.timeout}"),
            (self.retries < 0, f"retries must be 0 or more, got {self.retries}"),
            (self.backoff < 0, f"backoff must be 0 or more seconds, got {self.backoff}"),
            (self.batch_size < 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.max_request_chars < 1, f"max_request_chars must be at least 1, got {self.max_request_chars}"),
        ):
            if wrong:
                raise ClientConfigError(problem)
        self.base_url = self.base_url.rstrip("/")
        self.model_url = f"{self.base_url}/v1/models/{self.model_name}"
        self._server_names_version = False  # learnt from the first predict answer
        # Retries are ours (they must see 5xx bodies and back off); the pool only keeps connections open.
        self._pool = urllib3.PoolManager(num_pools=2, maxsize=self.pool_size, retries=False,
                                         timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout))

    @classmethod
    def from_config(cls, base_url: str | None = None, config: ServeConfig | None = None,
                    model_name: str | None = None, **overrides: Any) -> PredictClient:
        """A client set up from ``config`` (default: gin's ``ServeConfig``), reaching
        ``http://<host>:<rest_api_port>`` and ``config.model_name`` unless told."""
        if config is None:
            from ssp.config import ServeConfig

            config = ServeConfig()
        settings = {"timeout": config.client_timeout_seconds, "retries": config.client_retries,
                    "batch_size": config.client_batch_size, **overrides}
        return cls(base_url or config.url, model_name or config.model_name, **settings)

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> PredictClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- the API
    def status(self, retries: int | None = None) -> dict[str, Any]:
        """The model's ``model_version_status`` (every version the server knows, with its state)."""
        return self._call("GET", self.model_url, retries=retries)[0]

    def metadata(self) -> dict[str, Any]:
        """The latest version's ``model_spec`` and ``signature_def`` map."""
        return self._call("GET", f"{self.model_url}/metadata")[0]

    def available_version(self, retries: int | None = None) -> int | None:
        """The highest version in state AVAILABLE (the one predictions without a version use), if any."""
        versions = [int(s["version"]) for s in self.status(retries).get("model_version_status", [])
                    if s.get("state") == "AVAILABLE"]
        return max(versions) if versions else None

    def wait_until_available(self, timeout: float) -> int:
        """Block until some version is AVAILABLE and return it; raise after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                version = self.available_version(retries=0)  # this loop is the retry; no backoff past the deadline
                if version is not None:
                    return version
                last = None
            except ModelServerError as err:
                last = err
            if time.monotonic() >= deadline:
                reason = f": {last}" if last else " (the server answers, but no version is AVAILABLE)"
                raise ModelServerError(f"model {self.model_name} at {self.model_url} was not available "
                                       f"within {timeout:.0f} s{reason}", self.model_url)
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    def predict(self, texts: Sequence[str], version: int | None = None) -> np.ndarray:
        """P(AI) for each text, in order, as float32; sent in batches of ``batch_size``.

        With ``version``, every batch goes to ``/versions/<version>:predict``, so all the answers
        come from that version (a 404 if the server no longer has it loaded).
        """
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
            raise ValueError(f"model version must be a non-negative integer, got {version!r}")
        return self._predict_batches(self._check_texts(texts), version)[0]

    def predict_with_version(self, texts: Sequence[str]) -> tuple[np.ndarray, int | None]:
        """The probabilities and the model version that computed them.

        ssp's server names the version in a response header. TF Serving's predict answer has
        none, so the status is read before and after the batches and the call is repeated
        (up to three times) until both agree, i.e. no version switch happened in between.
        ``None`` only when ``texts`` is empty and no version is available.
        """
        texts = self._check_texts(texts)
        if not texts:
            return np.zeros(0, dtype=np.float32), self.available_version()
        for _ in range(3):
            before = None if self._server_names_version else self.available_version()
            probs, versions = self._predict_batches(texts)
            if versions:
                if len(versions) == 1:
                    return probs, versions.pop()
                continue  # the batches straddled a version switch: ask again
            if before == self.available_version():
                return probs, before
        raise ModelServerError(f"model {self.model_name} at {self.model_url} kept switching versions during "
                               "predictions; try again", self.model_url)

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _check_texts(texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str | bytes):
            raise TypeError("texts must be a sequence of strings, not one string")
        texts = list(texts)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{index}] is {type(text).__name__} ({text!r:.40}), not str")
        # str subclasses (numpy.str_ from an array or a DataFrame) would not serialize; plain str would
        return [text if type(text) is str else str(text) for text in texts]

    def _predict_batches(self, texts: list[str], version: int | None = None) -> tuple[np.ndarray, set[int]]:
        parts, versions = [], set()
        url = f"{self.model_url}:predict" if version is None else f"{self.model_url}/versions/{version}:predict"
        for start, stop in request_slices([len(text) for text in texts], self.batch_size, self.max_request_chars):
            batch = texts[start:stop]
            body: dict[str, Any] = {"instances": batch}
            if self.signature_name:
                body["signature_name"] = self.signature_name
            payload, headers = self._call("POST", url, body)
            parts.append(self._probabilities(payload, len(batch), url))
            if headers.get(VERSION_HEADER, "").isdigit():
                versions.add(int(headers[VERSION_HEADER]))
                self._server_names_version = True
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)), versions

    def _probabilities(self, payload: dict[str, Any], expected: int, url: str) -> np.ndarray:
        if not isinstance(payload, dict) or not isinstance(payload.get("predictions"), list):
            raise ModelServerError(f"{url} answered without a 'predictions' list: {str(payload)[:200]}", url)
        predictions = payload["predictions"]
        if predictions and isinstance(predictions[0], dict):  # a model with several outputs
            if self.output_name not in predictions[0]:
                raise ModelServerError(f"{url} answered outputs {sorted(predictions[0])}, none named "
                                       f"{self.output_name!r}", url)
            predictions = [row[self.output_name] for row in predictions]
        try:
            probs = np.asarray(predictions, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise ModelServerError(f"{url} answered predictions that are not numbers: {err}", url) from err
        if probs.ndim == 2 and probs.shape[1] == 1:  # a [None, 1] output, as Keras heads often have
            probs = probs[:, 0]
        if probs.shape != (expected,):
            raise ModelServerError(f"{url} answered predictions of shape {list(probs.shape)} for {expected} "
                                   "texts; the model must output one probability per text", url)
        return probs

    def _call(self, method: str, url: str, body: Any = None, retries: int | None = None) -> tuple[dict[str, Any], Any]:
        retries = self.retries if retries is None else retries
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        attempt = 0
        while True:
            reason, status = "", None
            try:
                response = self._pool.request(method, url, body=data, headers=headers)
            except NewConnectionError as err:  # before TimeoutError: urllib3 derives it from a timeout class
                reason = f"cannot connect ({err})"
            except Urllib3Timeout:
                reason = f"no answer within {self.timeout:g} s"
            except HTTPError as err:  # reset, closed mid-answer, protocol errors
                reason = f"connection failed ({err})"
            else:
                status = response.status
                if status == 200:
                    try:
                        return _decode(response.data), response.headers
                    except ValueError as err:
                        raise ModelServerError(f"{method} {url} answered 200 with a body that is not JSON: "
                                               f"{response.data[:200]!r}", url, status) from err
                reason = f"HTTP {status}: {_server_message(response.data)}"
                if status not in _RETRY_STATUSES:
                    raise ModelServerError(f"{method} {url} failed: {reason}", url, status)
            if attempt >= retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise ModelServerError(f"{method} {url} failed{tries}: {reason}", url, status)
            delay = self.backoff * 2**attempt
            time.sleep(delay + random.uniform(0, delay / 4))  # jitter, so many clients do not retry in step
            attempt += 1


def _decode(data: bytes) -> Any:
    """JSON from the server; Python's json for the NaN/Infinity tokens TF Serving may write, which orjson refuses."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _server_message(data: bytes) -> str:
    """The ``error`` of TF Serving's ``{"error": ...}`` body, or the start of whatever came instead."""
    try:
        payload = _decode(data)
    except ValueError:
        return data[:300].decode("utf-8", "replace") or "no body"
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return payload["error"]
    return json.dumps(payload)[:300]

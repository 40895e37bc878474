"""Live public Bluesky posts from Jetstream, the firehose's JSON form: free, and no account needed.

:class:`JetstreamSource` opens Jetstream's websocket, ``<url>?wantedCollections=app.bsky.feed.post``
(plus ``wantedDids`` when given, and ``cursor`` when resuming), and yields each post-creating
event as Jetstream sent it: ``{"did", "time_us", "kind": "commit", "commit": {"operation":
"create", "collection": "app.bsky.feed.post", "rkey", "cid", "record": {...}}}``, which
:func:`ssp.tweets.parse_tweet` turns into a canonical post with ``platform="bluesky"``. The
others are counted in :attr:`JetstreamSource.counts` and skipped: ``update`` and ``delete``
commits, ``identity`` events (whose handle is remembered and added to the author's later posts
as ``"handle"``) and ``account`` events. A message that is not a JSON object is yielded as
``bytes``, so the ingest job's dead-letter table keeps it, as for :mod:`ssp.sources.replay`.

Resuming without gaps. Each event carries ``time_us``, Jetstream's cursor. The source knows which
events its consumer has taken: when the consumer asks for the next record, every event read
before the last one handed over has been dealt with. :meth:`JetstreamSource.checkpointing` runs a
thread that, every ``checkpoint_seconds``, takes that position, flushes the Kafka producer (so
everything before it is acknowledged) and only then writes it to the cursor file (atomically).
A restart reconnects with ``cursor`` = the saved position minus ``rewind_seconds``: nothing is
lost, and the few events sent again are the same post ids, which the raw table's keyed,
idempotent writes (``ON CONFLICT DO NOTHING``) keep once. Within one run a reconnect resumes from
the last event read and a recent-id window drops what Jetstream sends twice.

Reconnects. A dropped connection, a refused one or a 5xx handshake is retried with exponential
backoff (``first_backoff`` doubling up to ``max_backoff``; reset once events flow again); after
``max_retries`` failed attempts in a row, or on a 4xx handshake answer (bad parameters), iteration
ends with :class:`JetstreamError`.

Compression. Jetstream's ``compress=true`` sends zstd frames made with a custom dictionary that
Jetstream publishes with its source. ssp cannot ship that file, so compression is off by default;
with ``zstd_dictionary`` set to that file's path the source asks for compressed frames and
decompresses them with it.

Addresses are ``wss://``; plain ``ws://`` only for a loopback host (how the tests point the source
at a local server that speaks Jetstream).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from ssp.errors import SspError
from ssp.tweets import POST_COLLECTION

__all__ = [
    "JETSTREAM_URL",
    "CursorFile",
    "JetstreamError",
    "JetstreamSource",
    "default_cursor_path",
    "subscribe_url",
]

log = logging.getLogger(__name__)

JETSTREAM_URL = "wss://jetstream2.us-east.bsky.network/subscribe"
URL_ENV_VAR = "SSP_JETSTREAM_URL"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_RECV_POLL_SECONDS = 0.5
_MAX_HANDLES = 100_000
_MAX_FRAME_BYTES = 8 * 1024 * 1024
_MAX_QUEUED_FRAMES = 4096


class JetstreamError(SspError, RuntimeError):
    """Jetstream refused the subscription or could not be reached after the retries."""


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "wss" and parts.hostname:
        return url
    if parts.scheme == "ws" and parts.hostname in _LOOPBACK_HOSTS:
        return url
    raise JetstreamError(f"Jetstream URL {url!r} must be wss:// (plain ws:// only for a loopback test server)")


def subscribe_url(base: str, wanted_dids: Iterable[str] = (), cursor: int | None = None,
                  compress: bool = False) -> str:
    """The subscription address: posts only, the DIDs wanted, where to resume, compression.

    >>> subscribe_url("ws://127.0.0.1:1/subscribe", ["did:plc:a"], cursor=17)
    'ws://127.0.0.1:1/subscribe?wantedCollections=app.bsky.feed.post&wantedDids=did%3Aplc%3Aa&cursor=17'
    """
    query: list[tuple[str, str]] = [("wantedCollections", POST_COLLECTION)]
    query += [("wantedDids", did) for did in wanted_dids]
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    if compress:
        query.append(("compress", "true"))
    return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"


def default_cursor_path(url: str, state_dir: Path | None = None) -> Path:
    """Where the cursor of a stream from ``url`` is kept: one file per Jetstream host."""
    from ssp.config import default_state_dir

    host = urlsplit(url).netloc or "jetstream"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in host)
    return (state_dir or default_state_dir()) / "bluesky" / f"cursor-{safe}.json"


class CursorFile:
    """The resume position (a Jetstream ``time_us``) in a small JSON file, replaced atomically."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def load(self) -> int | None:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as err:
            raise JetstreamError(f"cursor file {self.path} cannot be read ({err}): fix or delete it") from err
        cursor = data.get("time_us") if isinstance(data, dict) else None
        if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
            raise JetstreamError(f"cursor file {self.path} holds no time_us: fix or delete it")
        return cursor

    def save(self, time_us: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            handle.write(orjson.dumps({"time_us": time_us}))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


class _RecentIds:
    """The last ``size`` keys seen, to drop an event Jetstream sends again after a reconnect."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        if key in self._keys:
            return True
        self._keys[key] = None
        if len(self._keys) > self.size:
            self._keys.popitem(last=False)
        return False


class JetstreamSource:
    """Bluesky posts, live from Jetstream; iterate once. See the module docstring."""

    def __init__(
        self,
        url: str | None = None,
        *,
        wanted_dids: Iterable[str] = (),
        cursor_file: CursorFile | Path | str | None = None,
        rewind_seconds: float = 5.0,
        max_records: int | None = None,
        first_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retries: int = 20,
        open_timeout: float = 10.0,
        zstd_dictionary: Path | str | None = None,
        recent_ids: int = 100_000,
    ) -> None:
        self.url = _check_url(url or os.environ.get(URL_ENV_VAR) or JETSTREAM_URL)
        self.wanted_dids = tuple(wanted_dids)
        if cursor_file is not None and not isinstance(cursor_file, CursorFile):
            cursor_file = CursorFile(cursor_file)
        self.cursor_file = cursor_file
        if max_records is not None and max_records < 0:
            raise ValueError(f"max_records must be 0 or more, got {max_records}")
        self.rewind_us = int(rewind_seconds * 1_000_000)
        self.max_records = max_records
        self.first_backoff, self.max_backoff, self.max_retries = first_backoff, max_backoff, max_retries
        self.open_timeout = open_timeout
        self._decompress = _zstd_decompressor(zstd_dictionary) if zstd_dictionary else None
        self.counts: dict[str, int] = dict.fromkeys(
            ("posts", "updates", "deletes", "identity", "account", "other", "duplicates", "undecodable",
             "reconnects"), 0)
        self.handles: OrderedDict[str, str] = OrderedDict()
        self._recent = _RecentIds(recent_ids)
        self._stopping = threading.Event()
        self.last_read_us: int | None = None  # the newest time_us read from the stream
        self.done_us: int | None = None  # every event up to this one has been taken by the consumer

    # ------------------------------------------------------------------ control
    def stop(self) -> None:
        """End the iteration at the next message or within half a second; safe from any thread."""
        self._stopping.set()

    def start_cursor(self) -> int | None:
        """Where this run asks Jetstream to start: the saved cursor minus the rewind, or live."""
        saved = self.cursor_file.load() if self.cursor_file is not None else None
        return None if saved is None else max(0, saved - self.rewind_us)

    def save_cursor(self, flush: Callable[[], Any] | None = None) -> int | None:
        """Flush (``flush``, e.g. the Kafka producer's), then store the position everything before is done at."""
        done = self.done_us
        if done is None or self.cursor_file is None:
            return None
        if flush is not None:
            flush()
        self.cursor_file.save(done)
        return done

    @contextlib.contextmanager
    def checkpointing(self, flush: Callable[[], Any], every_seconds: float = 1.0) -> Iterator[None]:
        """Save the cursor every ``every_seconds`` on a thread while the body runs, and once at its end."""
        finished = threading.Event()

        def loop() -> None:
            while not finished.wait(every_seconds):
                try:
                    self.save_cursor(flush)
                except Exception as err:  # a broker hiccup: the next round tries again, the end saves
                    log.warning("could not save the Jetstream cursor: %s", err)

        thread = threading.Thread(target=loop, name="jetstream-cursor", daemon=True)
        thread.start()
        try:
            yield
        finally:
            finished.set()
            thread.join()
            self.save_cursor(flush)

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[dict[str, Any] | bytes]:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        cursor = self.start_cursor()
        failures = 0
        yielded = 0
        while not self._stopping.is_set():
            if self.max_records is not None and yielded >= self.max_records:
                return
            address = subscribe_url(self.url, self.wanted_dids, cursor, self._decompress is not None)
            try:
                # a proxy from the environment cannot reach the caller's own loopback
                loopback = urlsplit(address).hostname in _LOOPBACK_HOSTS
                with connect(address, open_timeout=self.open_timeout, max_size=_MAX_FRAME_BYTES,
                             max_queue=_MAX_QUEUED_FRAMES, compression=None,
                             proxy=None if loopback else True) as socket:
                    log.info("connected to Jetstream at %s", address)
                    for record in self._messages(socket):
                        failures = 0
                        yield record
                        yielded += 1
                        self.done_us = self.last_read_us
                        if self.max_records is not None and yielded >= self.max_records:
                            return
                    return  # stopped
            except InvalidStatus as err:
                status = err.response.status_code
                if 400 <= status < 500 and status != 429:
                    raise JetstreamError(f"Jetstream at {self.url} refused the subscription: HTTP {status} "
                                         f"{err.response.body[:200].decode('utf-8', 'replace')}") from err
                reason = f"HTTP {status}"
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as err:
                reason = f"{type(err).__name__}: {err}"
            failures += 1
            if failures > self.max_retries:
                raise JetstreamError(f"Jetstream at {self.url} could not be reached after {self.max_retries} "
                                     f"retries (last: {reason})")
            cursor = self.last_read_us if self.last_read_us is not None else cursor
            delay = min(self.max_backoff, self.first_backoff * 2 ** (failures - 1))
            self.counts["reconnects"] += 1
            log.warning("Jetstream connection lost (%s); reconnecting in %.1f s from cursor %s", reason, delay, cursor)
            if self._stopping.wait(delay):
                return

    def _messages(self, socket) -> Iterator[dict[str, Any] | bytes]:
        """The records of one connection until it closes (raises) or the source is stopped (returns)."""
        while not self._stopping.is_set():
            try:
                message = socket.recv(timeout=_RECV_POLL_SECONDS)
            except TimeoutError:
                continue
            record = self._record(message)
            if record is not None:
                yield record

    def _record(self, message: str | bytes) -> dict[str, Any] | bytes | None:
        """One message as a record to yield, or None when it is counted and skipped."""
        if isinstance(message, bytes) and self._decompress is not None:
            try:
                message = self._decompress(message)
            except Exception:  # zstd.ZstdError: the frame is kept for the dead letters as it came
                self.counts["undecodable"] += 1
                return message
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            self.counts["undecodable"] += 1
            return message.encode("utf-8") if isinstance(message, str) else bytes(message)
        time_us = event.get("time_us")
        if isinstance(time_us, int) and not isinstance(time_us, bool):
            self.last_read_us = time_us if self.last_read_us is None else max(self.last_read_us, time_us)
        return self._post_or_none(event)

    def _post_or_none(self, event: dict[str, Any]) -> dict[str, Any] | None:
        kind, did = event.get("kind"), event.get("did")
        if kind is None:
            return event  # not a Jetstream event at all: the parser names what is wrong, for the dead letters
        commit = event.get("commit") if kind == "commit" else None
        operation = commit.get("operation") if isinstance(commit, dict) else None
        if kind == "identity":
            identity = event.get("identity")
            handle = identity.get("handle") if isinstance(identity, dict) else None
            if isinstance(did, str) and isinstance(handle, str) and handle:
                self._remember_handle(did, handle)
        if kind in ("identity", "account") or operation in ("update", "delete"):
            self.counts[kind if kind != "commit" else f"{operation}s"] += 1
            return None
        if operation != "create" or commit.get("collection") != POST_COLLECTION:
            self.counts["other"] += 1
            return None
        if self._recent.seen(f"{did}/{commit.get('rkey')}"):
            self.counts["duplicates"] += 1
            return None
        self.counts["posts"] += 1
        handle = self.handles.get(did) if isinstance(did, str) else None
        if handle is not None:
            event["handle"] = handle
        return event

    def _remember_handle(self, did: str, handle: str) -> None:
        self.handles[did] = handle
        self.handles.move_to_end(did)
        if len(self.handles) > _MAX_HANDLES:
            self.handles.popitem(last=False)

    def summary(self) -> str:
        """What the stream carried besides the posts, e.g. for the produce command's log."""
        return ", ".join(f"{count} {name}" for name, count in self.counts.items() if count)


def _zstd_decompressor(path: Path | str) -> Callable[[bytes], bytes]:
    """Decompression of Jetstream's zstd frames with the dictionary they were made with."""
    try:
        import zstandard
    except ImportError as err:  # pragma: no cover - zstandard is a core dependency
        raise JetstreamError("zstd_dictionary is set but the zstandard package is not installed") from err
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise JetstreamError(f"zstd dictionary {path}: cannot read it ({err.strerror})") from err
    decompressor = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(data))

    def decompress(frame: bytes) -> bytes:
        return decompressor.decompress(frame, max_output_size=_MAX_FRAME_BYTES)

    return decompress


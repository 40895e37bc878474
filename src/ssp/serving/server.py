"""ssp's own model server: TensorFlow Serving's REST API over any SavedModel.

It stands in for ``tensorflow_model_server`` where that binary is not installed, so every
client (``ssp.serving.client``, curl, a notebook) is written once against TF Serving's
documented REST API (``api_rest.md``) and works with either server:

* ``GET  /v1/models/{m}[/versions/{v}|/labels/{l}]`` -- ``model_version_status``;
* ``GET  /v1/models/{m}[/versions/{v}|/labels/{l}]/metadata`` -- the ``signature_def`` map;
* ``POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict`` -- row (``instances``) or columnar
  (``inputs``) requests, ``signature_name``, ``{"b64": ...}`` binary values, ``NaN`` and
  ``Infinity`` tokens; answers ``predictions`` or ``outputs``;
* errors as ``{"error": "..."}`` with TF Serving's HTTP statuses and, where its code has one,
  its wording (404 ``Servable not found for request: Latest(m)``, 400 ``Unrecognized servable
  version label: l``, ...).

Versions follow TF Serving's defaults: the folder ``<base>/<N>/`` with the highest integer N
that holds a ``saved_model.pb`` is served; a new one is loaded (and warmed up) before the old
one is unloaded, so requests never meet a gap; folders with other names (an exporter's
``.tmp-...``) are ignored, and one that fails to load is logged and retried with backoff while
the previous version keeps serving. Versions named by a version label (TF Serving's
``version_labels``) stay loaded too. Unloaded versions keep reporting ``END`` in the status,
as TF Serving's servable state monitor does.

Requests run on a thread each (``ThreadingHTTPServer``, HTTP/1.1 keep-alive); TensorFlow
releases the GIL while it computes, so concurrent predictions use every core.

What it refuses, beyond TF Serving's own checks (settings in ``ServeConfig``, flags of ``ssp serve``):

* a body over ``max_request_bytes`` (``--max-request-bytes``, 16 MiB): 413;
* more than ``max_batch_size`` instances in one request (``--max-batch-size``, 10,000; TF Serving's
  ``--max_batch_size``): 400 naming the limit, so one request cannot hold the CPU for seconds;
* JSON nested deeper than 64 arrays/objects, or holding a lone UTF-16 surrogate (``"\\ud800"``,
  valid JSON but no Unicode text): 400 naming the problem;
* a POST whose ``Content-Type`` is not ``application/json`` (``text/plain`` and form bodies are what
  a web page may send to another site without asking): 415. A body without a ``Content-Type`` is
  taken as JSON, as TF Serving does;
* a ``Host`` header naming another server (DNS rebinding): 403. Bound to a loopback address, the
  names are ``127.0.0.1``, ``localhost`` and ``[::1]`` with the bound port; bound to another address,
  that address with the port; bound to ``0.0.0.0``/``::``, any name. ``allowed_hosts``
  (``--allowed-host``, repeatable, ``*`` for any) adds names accepted on any port and, on a
  wildcard bind, makes the list exclusive. An ``Origin`` header (sent by browsers) must pass the
  same check (on a wildcard bind without a list: name the request's own ``Host``), else 403.

Every answer is ``Content-Type: application/json`` with ``X-Content-Type-Options: nosniff``, so an
error that quotes its input is never rendered as a page.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import orjson
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from ssp.errors import SspError
from ssp.signals import stop_on_sigterm

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = "serving_default"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
VERSION_HEADER = "X-Ssp-Model-Version"
_VERSION_FOLDER = re.compile(r"[0-9]+")
_INT64_MAX = 2**63 - 1
# TF Serving's own path patterns (model names and labels exclude '/' and ':'); case-insensitive like its RE2s.
_PREDICT_PATH = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/([0-9]+)|/labels/([^/:]+))?:(classify|regress|predict)", re.IGNORECASE
)
_STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?(?:/versions/([0-9]+)|/labels/([^/:]+))?(?:/(metadata))?",
                          re.IGNORECASE)
_RETRY_BACKOFF_CAP_SECONDS = 60.0
_SHUTDOWN_DRAIN_SECONDS = 10.0
_DISCARD_BYTES = 16 * 1024 * 1024
MAX_JSON_DEPTH = 64  # arrays/objects inside each other; a tensor of rank 63 fits, a stack-exhausting body does not
DEFAULT_MAX_BATCH_SIZE = 10_000
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::([0-9]{1,5}))?")
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})


class ApiError(SspError):
    """A request the server answers with ``{"error": message}`` and an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def _not_found(message: str) -> ApiError:
    return ApiError(404, message)


# ---------------------------------------------------------------- a loaded version


@dataclass(frozen=True)
class InputSpec:
    """What one named input must be: its dtype and shape (None for an unknown dimension)."""

    dtype: tf.DType
    shape: tuple[int | None, ...] | None  # None: unknown rank


@dataclass(frozen=True)
class ServingSignature:
    """One callable signature of a SavedModel and what its inputs must look like."""

    name: str
    function: Callable[..., Mapping[str, tf.Tensor]]
    inputs: Mapping[str, InputSpec]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class LoadedVersion:
    """One version in memory, ready to answer."""

    version: int
    path: Path
    signatures: Mapping[str, ServingSignature]
    signature_def: dict[str, Any]  # the metadata API's JSON, computed once at load
    # The loaded object owns the variables the signature functions read; keep it alive.
    saved_model: Any = field(repr=False)


def _signature_def_json(path: Path) -> dict[str, Any]:
    """The ``serve`` meta graph's SignatureDefs as TF Serving prints them (proto field names, defaults shown)."""
    pb_path = path / "saved_model.pb"
    proto = saved_model_pb2.SavedModel()
    if pb_path.exists():
        proto.ParseFromString(pb_path.read_bytes())
    else:
        from google.protobuf import text_format

        text_format.Parse((path / "saved_model.pbtxt").read_text(), proto)
    graphs = [g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags] or list(proto.meta_graphs)
    if not graphs:
        raise ValueError(f"{path} holds no meta graph")
    return {
        name: json_format.MessageToDict(sig, preserving_proto_field_name=True,
                                        always_print_fields_with_no_presence=True)
        for name, sig in graphs[0].signature_def.items()
    }


def _serving_signature(name: str, function: Any) -> ServingSignature:
    args, kwargs = function.structured_input_signature
    if args:
        raise ValueError(f"signature {name!r} takes positional inputs; SavedModel signatures take named ones")
    inputs = {
        key: InputSpec(spec.dtype, None if spec.shape.rank is None else tuple(spec.shape.as_list()))
        for key, spec in kwargs.items()
    }
    outputs = function.structured_outputs
    if not isinstance(outputs, Mapping):
        raise ValueError(f"signature {name!r} does not return named outputs")
    return ServingSignature(name, function, inputs, tuple(outputs))


def load_version(path: Path, version: int) -> LoadedVersion:
    """Load one version folder and warm every signature up, so its first request is not slow."""
    saved_model = tf.saved_model.load(str(path))
    signatures = {name: _serving_signature(name, fn) for name, fn in saved_model.signatures.items()}
    loaded = LoadedVersion(version, path, signatures, _signature_def_json(path), saved_model)
    for signature in signatures.values():
        _warm_up(signature)
    return loaded


def _warm_up(signature: ServingSignature) -> None:
    """Run the signature once on a one-row batch of zeros/empty strings (TF Serving's warm-up, generically)."""
    feed = {}
    for name, spec in signature.inputs.items():
        if spec.shape is None:
            return
        shape = [1 if d is None else d for d in spec.shape]
        feed[name] = tf.zeros(shape, dtype=spec.dtype) if spec.dtype != tf.string else tf.fill(shape, "")
    try:
        signature.function(**feed)
    except Exception as err:  # a model may reject the dummy input; that only costs the first request's speed
        log.debug("warm-up of signature %s skipped: %s", signature.name, err)


def version_folders(base_path: Path) -> dict[int, Path]:
    """The complete version folders under ``base_path``: integer names holding a saved_model.pb.

    A folder still being written (no saved_model.pb yet) is left for a later poll; any other
    name (``.tmp-...``, ``notes``) is not a version at all.
    """
    try:
        entries = list(base_path.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return {}
    versions = {}
    for entry in entries:
        if _VERSION_FOLDER.fullmatch(entry.name) and int(entry.name) <= _INT64_MAX and entry.is_dir():
            if any((entry / name).is_file() for name in SAVED_MODEL_FILES):
                versions[int(entry.name)] = entry
    return versions


# ---------------------------------------------------------------- request and response tensors


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _to_bytes(value: Any, input_name: str, depth: int = 0) -> Any:
    """JSON strings as UTF-8, ``{"b64": ...}`` objects decoded, nested lists kept nested (at most 64 deep)."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise _bad_request(f"input '{input_name}': {_surrogate_message(err)}") from err
    if isinstance(value, list):
        if depth >= MAX_JSON_DEPTH:
            raise _bad_request(f"input '{input_name}' is nested deeper than {MAX_JSON_DEPTH} lists")
        return [_to_bytes(item, input_name, depth + 1) for item in value]
    if _is_b64(value):
        encoded = value["b64"]
        if not isinstance(encoded, str):
            raise _bad_request(f"input '{input_name}': the 'b64' value must be a string")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as err:
            raise _bad_request(f"input '{input_name}': unable to base64 decode {encoded[:40]!r}: {err}") from err
    raise _bad_request(f"input '{input_name}': JSON value {json.dumps(value)[:80]} is not of expected type: string")


# Which JSON-made numpy kinds each signature dtype kind takes: ints widen to floats, nothing narrows.
_NUMPY_KINDS = {"f": "iuf", "c": "iufc", "i": "iu", "u": "iu", "b": "b"}


def _input_tensor(name: str, value: Any, spec: InputSpec) -> tf.Tensor:
    """One named input from its JSON value, checked against the signature's dtype and shape."""
    if spec.dtype == tf.string and isinstance(value, list) and all(type(v) is str for v in value):
        # the common case (a batch of texts): TensorFlow encodes the str objects itself
        _check_shape(name, (len(value),), spec)
        return tf.constant(value, dtype=tf.string)
    try:
        if spec.dtype == tf.string:
            array = np.array(_to_bytes(value, name), dtype=object)
            if array.dtype != object or any(not isinstance(v, bytes) for v in array.flat):
                raise _bad_request(f"input '{name}' is ragged: every row of a tensor needs the same length")
        else:
            target = np.dtype(spec.dtype.as_numpy_dtype)
            array = np.asarray(value)
            if array.dtype.kind not in _NUMPY_KINDS.get(target.kind, ""):
                sample = json.dumps(value)[:80]
                raise _bad_request(f"input '{name}': JSON value {sample} is not of expected type: {spec.dtype.name}")
            if target.kind in "iu" and array.size:
                info = np.iinfo(target)
                if array.min() < info.min or array.max() > info.max:
                    raise _bad_request(f"input '{name}' has values outside the range of {spec.dtype.name}")
            converted = array.astype(target)
            if target.kind == "f" and not np.array_equal(np.isfinite(converted), np.isfinite(array)):
                raise _bad_request(f"input '{name}' has values too large for {spec.dtype.name}")
            array = converted
    except ValueError as err:  # numpy refuses ragged nested lists
        raise _bad_request(f"input '{name}' is not a tensor (rows of different lengths?): {err}") from err
    _check_shape(name, array.shape, spec)
    try:
        return tf.constant(array, dtype=spec.dtype)
    except (RuntimeError, ValueError) as err:  # e.g. more dimensions than TensorFlow takes, for an unknown rank
        raise _bad_request(f"input '{name}' cannot be a tensor: {err}") from err


def _check_shape(name: str, shape: tuple[int, ...], spec: InputSpec) -> None:
    if spec.shape is None:
        return
    if len(shape) != len(spec.shape) or any(d is not None and d != n for d, n in zip(spec.shape, shape, strict=True)):
        expected = "[" + ", ".join("-1" if d is None else str(d) for d in spec.shape) + "]"
        raise _bad_request(f"input '{name}' has shape {list(shape)}, the signature expects {expected}")


def _row_inputs(instances: Any, signature: ServingSignature) -> dict[str, Any]:
    if not isinstance(instances, list):
        raise _bad_request("'instances' must be a list of rows")
    named = bool(instances) and all(isinstance(row, dict) and not _is_b64(row) for row in instances)
    if len(signature.inputs) == 1 and not named:
        return {next(iter(signature.inputs)): instances}
    if not named:
        raise _bad_request(
            f"signature '{signature.name}' has {len(signature.inputs)} inputs ({', '.join(sorted(signature.inputs))}): "
            "each of 'instances' must be an object naming them"
        )
    expected = set(signature.inputs)
    for index, row in enumerate(instances):
        if set(row) != expected:
            raise _bad_request(
                f"instance {index} has inputs {sorted(row)}, signature '{signature.name}' takes {sorted(expected)}"
            )
    return {name: [row[name] for row in instances] for name in signature.inputs}


def _column_inputs(inputs: Any, signature: ServingSignature) -> dict[str, Any]:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        if set(inputs) != set(signature.inputs):
            raise _bad_request(
                f"'inputs' names {sorted(inputs)}, signature '{signature.name}' takes {sorted(signature.inputs)}"
            )
        return dict(inputs)
    if len(signature.inputs) != 1:
        raise _bad_request(
            f"signature '{signature.name}' has {len(signature.inputs)} inputs: 'inputs' must be an object naming them"
        )
    return {next(iter(signature.inputs)): inputs}


def _bytes_json(value: bytes, binary: bool) -> Any:
    if not binary:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass  # bytes JSON cannot carry as text go out base64-encoded, as '_bytes' outputs do
    return {"b64": base64.b64encode(value).decode("ascii")}


def python_values(name: str, array: np.ndarray) -> Any:
    """A tensor as nested Python values; float32 in its shortest exact decimal form, as TF Serving writes it."""
    kind = array.dtype.kind
    if kind in ("O", "S"):
        binary = name.endswith("_bytes")
        flat = [_bytes_json(v, binary) for v in array.ravel()]
        return np.array(flat, dtype=object).reshape(array.shape).tolist() if array.ndim else flat[0]
    if kind == "f" and array.dtype.itemsize < 8:
        return array.astype(str).astype(np.float64).tolist()
    if kind in "biuf":
        return array.tolist()
    raise ApiError(500, f"output '{name}' has dtype {array.dtype}, which the REST API cannot encode")


def output_json(name: str, array: np.ndarray) -> Any:
    """A whole output tensor for the response: numbers stay a numpy array, which :func:`encode_json` writes natively."""
    if array.dtype.kind in "biuf" and array.ndim:
        return np.ascontiguousarray(array)
    return python_values(name, array)


def _has_nonfinite(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind == "f" and not np.isfinite(value).all()
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nonfinite(v) for v in value)
    return isinstance(value, float) and not np.isfinite(value)


def encode_json(payload: Any) -> bytes:
    """The response body: orjson (numpy arrays written natively, float32 shortest-form) unless a float is
    NaN or infinite, which orjson would turn into null; Python's json writes TF Serving's NaN/Infinity tokens."""
    if not _has_nonfinite(payload):
        try:
            return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
        except orjson.JSONEncodeError:
            pass  # a str orjson refuses (a lone surrogate); Python's json escapes it
    return json.dumps(payload, separators=(",", ":"), default=lambda array: python_values("", array)).encode()


def json_nesting_depth(body: bytes) -> int:
    """How deep arrays/objects nest in a JSON text, found without recursion (brackets inside strings skipped)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return MAX_JSON_DEPTH  # cannot be deeper; skip the scan (the common case: a list of texts)
    codes = np.frombuffer(_JSON_STRING.sub(b"", body), dtype=np.uint8)
    steps = (codes == ord("[")).astype(np.int32) + (codes == ord("{")) - (codes == ord("]")) - (codes == ord("}"))
    return int(np.cumsum(steps).max()) if steps.size else 0


def _surrogate_message(err: UnicodeEncodeError) -> str:
    text = err.object[max(err.start - 30, 0):err.end + 30].encode("utf-8", "backslashreplace").decode("ascii", "replace")
    return (f"the string {text!r} holds a lone UTF-16 surrogate ({err.object[err.start:err.end]!a}), "
            "which is not Unicode text; escape a character outside the BMP as a surrogate pair")


def decode_json(body: bytes) -> Any:
    """A request body; Python's json only for what orjson refuses (the NaN/Infinity tokens TF Serving accepts).

    Refused with a 400: JSON nested deeper than ``MAX_JSON_DEPTH``, and strings with a lone surrogate.
    """
    depth = json_nesting_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise _bad_request(f"JSON Parse error: arrays/objects are nested {depth} deep, more than this server's "
                           f"limit of {MAX_JSON_DEPTH}")
    try:
        return orjson.loads(body)  # refuses lone surrogates itself
    except orjson.JSONDecodeError:
        pass
    try:
        value = json.loads(body)
    except RecursionError as err:  # not reached under the depth bound; kept so a parser change cannot cost a 500
        raise _bad_request(f"JSON Parse error: nested more than {MAX_JSON_DEPTH} deep") from err
    except ValueError as err:  # bad JSON or bad UTF-8
        raise _bad_request(f"JSON Parse error: {err}") from err
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # C-speed: any lone surrogate fails to encode
    except UnicodeEncodeError as err:
        raise _bad_request(f"JSON Parse error: {_surrogate_message(err)}") from err
    return value


def _check_batch_size(columns: Mapping[str, Any], row_format: bool, max_batch_size: int | None) -> None:
    if max_batch_size is None:
        return
    size = max((len(value) for value in columns.values() if isinstance(value, list)), default=0)
    if size > max_batch_size:
        what = "instances" if row_format else "rows in an input"
        raise _bad_request(f"the request has {size} {what}, more than this server's maximum batch size of "
                           f"{max_batch_size} (ssp serve --max-batch-size); send them in smaller requests")


def predict_response(body: Any, version: LoadedVersion, max_batch_size: int | None = None) -> dict[str, Any]:
    """Answer one predict request body (already parsed JSON) with the given loaded version.

    More than ``max_batch_size`` instances (rows of any input, in columnar format) is a 400.
    """
    if not isinstance(body, dict):
        raise _bad_request("the request body must be a JSON object")
    signature_name = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise _bad_request("'signature_name' key must be a string value.")
    signature = version.signatures.get(signature_name or DEFAULT_SIGNATURE)
    if signature is None:
        raise _bad_request(f'Serving signature name: "{signature_name}" not found in signature def')
    if "instances" in body and "inputs" in body:
        raise _bad_request("Not a valid JSON request: 'instances' and 'inputs' cannot both be given")
    if "instances" in body:
        columns, row_format = _row_inputs(body["instances"], signature), True
    elif "inputs" in body:
        columns, row_format = _column_inputs(body["inputs"], signature), False
    else:
        raise _bad_request("Missing 'inputs' or 'instances' key")
    _check_batch_size(columns, row_format, max_batch_size)
    feed = {name: _input_tensor(name, value, signature.inputs[name]) for name, value in columns.items()}
    try:
        result = signature.function(**feed)
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as err:
        raise _bad_request(f"signature '{signature.name}' rejected the inputs: {err}") from err
    arrays = {name: result[name].numpy() for name in signature.outputs}
    if not row_format:
        values = {name: output_json(name, array) for name, array in arrays.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    rows = {len(array) if array.ndim else None for array in arrays.values()}
    if len(rows) != 1 or None in rows:
        sizes = {name: list(array.shape) for name, array in arrays.items()}
        raise _bad_request(f"outputs of signature '{signature.name}' do not share a batch size {sizes}; "
                           "ask in columnar format ('inputs')")
    if len(arrays) == 1:
        return {"predictions": output_json(*next(iter(arrays.items())))}
    values = {name: python_values(name, array) for name, array in arrays.items()}
    names = list(values)
    return {"predictions": [dict(zip(names, row, strict=True)) for row in zip(*values.values(), strict=True)]}


# ---------------------------------------------------------------- one model's versions


@dataclass
class VersionState:
    """One version's entry in the model status, in GetModelStatusResponse's terms."""

    state: str  # START | LOADING | AVAILABLE | UNLOADING | END, as in GetModelStatusResponse
    error_code: str = "OK"
    error_message: str = ""

    def as_json(self, version: int) -> dict[str, Any]:
        return {"version": str(version), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}


class ServedModel:
    """The versions of one model: which are loaded, which are served, and their states.

    ``served`` is replaced whole, never changed in place, so a request reads one consistent
    map without a lock while the poller swaps versions.
    """

    def __init__(self, name: str, base_path: Path, version_labels: Mapping[str, int] | None = None) -> None:
        self.name = name
        self.base_path = Path(base_path)
        self.version_labels = dict(version_labels or {})
        self.served: dict[int, LoadedVersion] = {}
        self._states: dict[int, VersionState] = {}
        self._retry_at: dict[int, tuple[float, float]] = {}  # version -> (monotonic time, current backoff)
        self._lock = threading.Lock()  # one poll at a time
        self.loaded_ever: list[int] = []

    # ---- the poller's side
    def poll_once(self) -> None:
        """Load what should be served and is not, then unload what no longer should be.

        Served: the newest version on disk (or, while that one fails to load, the newest loaded
        one still on disk) and every labelled version on disk; a deleted folder is unloaded.
        """
        with self._lock:
            on_disk = version_folders(self.base_path)
            wanted = ({max(on_disk)} if on_disk else set()) | {v for v in self.version_labels.values() if v in on_disk}
            for version in sorted(wanted - set(self.served), reverse=True):
                self._try_load(version, on_disk[version])
            served = self.served
            still_there = [v for v in served if v in on_disk]
            keep = ({max(still_there)} if still_there else set()) | {
                v for v in self.version_labels.values() if v in still_there
            }
            for version in sorted(set(served) - keep):
                self._unload(version)

    def _try_load(self, version: int, path: Path) -> None:
        retry_at, backoff = self._retry_at.get(version, (0.0, 0.0))
        if time.monotonic() < retry_at:
            return
        self._states[version] = VersionState("LOADING")
        start = time.monotonic()
        try:
            loaded = load_version(path, version)
        except Exception as err:  # any broken folder must leave the server running on what it has
            backoff = min(max(backoff * 2, 1.0), _RETRY_BACKOFF_CAP_SECONDS)
            self._retry_at[version] = (time.monotonic() + backoff, backoff)
            self._states[version] = VersionState("END", "UNKNOWN", f"{type(err).__name__}: {err}")
            log.error("version %d of model %s at %s failed to load (retrying in %.0f s): %s",
                      version, self.name, path, backoff, err)
            return
        self._retry_at.pop(version, None)
        self.served = {**self.served, version: loaded}
        self._states[version] = VersionState("AVAILABLE")
        self.loaded_ever.append(version)
        log.info("loaded version %d of model %s from %s in %.1f s; signatures: %s", version, self.name, path,
                 time.monotonic() - start, ", ".join(sorted(loaded.signatures)))

    def _unload(self, version: int) -> None:
        self._states[version] = VersionState("UNLOADING")
        self.served = {v: loaded for v, loaded in self.served.items() if v != version}
        self._states[version] = VersionState("END")
        log.info("unloaded version %d of model %s", version, self.name)

    # ---- the requests' side
    def _check_name(self, name: str, spec: str) -> None:
        if name != self.name:
            raise _not_found(f"Servable not found for request: {spec}")

    def _label_version(self, label: str) -> int:
        if label not in self.version_labels:
            raise _bad_request(f"Unrecognized servable version label: {label}")
        return self.version_labels[label]

    def resolve(self, name: str, version: int | None, label: str | None) -> LoadedVersion:
        """The loaded version a request asks for: latest, a number or a label."""
        if label is not None:
            if name != self.name:
                raise _bad_request(f"Unrecognized servable version label: {label}")
            version = self._label_version(label)
        served = self.served
        if version is None:
            self._check_name(name, f"Latest({name})")
            if not served:
                raise _not_found(f"Servable not found for request: Latest({name})")
            return served[max(served)]
        self._check_name(name, f"Specific({name}, {version})")
        if version not in served:
            raise _not_found(f"Servable not found for request: Specific({name}, {version})")
        return served[version]

    def status(self, name: str, version: int | None, label: str | None) -> dict[str, Any]:
        if label is not None and name == self.name:
            version = self._label_version(label)
        states = dict(self._states) if name == self.name else {}
        if version is not None:
            if version not in states:
                raise _not_found(f"Could not find version {version} of model {name}")
            return {"model_version_status": [states[version].as_json(version)]}
        if not states:
            raise _not_found(f"Could not find any versions of model {name}")
        return {"model_version_status": [states[v].as_json(v) for v in sorted(states, reverse=True)]}

    def metadata(self, name: str, version: int | None, label: str | None) -> dict[str, Any]:
        loaded = self.resolve(name, version, label)
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(loaded.version)},
            "metadata": {"signature_def": {"signature_def": loaded.signature_def}},
        }


# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` (and ``Origin``) names a request may use: the bound address's, to stop DNS rebinding.

    ``pinned`` names must come with the bound port (or none, on port 80); ``extra`` names (``allowed_hosts``)
    on any port; ``any_host``: a wildcard bind without an allow-list takes every name.
    """

    port: int
    pinned: frozenset[str] = frozenset()
    extra: frozenset[str] = frozenset()
    any_host: bool = False

    @classmethod
    def for_bind(cls, host: str, port: int, allowed_hosts: Sequence[str] = ()) -> HostPolicy:
        extra = set()
        for name in allowed_hosts:
            name = name.strip().lower()
            match = _HOST_HEADER.fullmatch(name)
            if name != "*" and (match is None or match.group(2) is not None):
                raise ValueError(f"allowed host {name!r} is not a host name or address (no scheme, path or port)")
            extra.add(name)
        if "*" in extra:
            return cls(port, any_host=True)
        bound = host.strip().lower().strip("[]")
        try:
            address = ipaddress.ip_address(bound) if bound else ipaddress.ip_address("0.0.0.0")
        except ValueError:  # a host name: itself, and the loopback names if it is localhost
            address = ipaddress.ip_address("127.0.0.1") if bound == "localhost" else None
            pinned = {bound}
        else:  # by address; a wildcard's own (Host: 0.0.0.0, which browsers send to localhost) is not a name
            pinned = set() if address.is_unspecified else {f"[{address}]" if address.version == 6 else str(address)}
        if address is not None and address.is_unspecified and not extra:
            return cls(port, any_host=True)
        if address is not None and (address.is_loopback or address.is_unspecified):
            pinned |= _LOOPBACK_NAMES
        return cls(port, frozenset(pinned), frozenset(extra))

    def allows(self, host_header: str) -> bool:
        """Whether a ``Host`` value (``name[:port]``) names this server."""
        if self.any_host:
            return True
        match = _HOST_HEADER.fullmatch(host_header.strip().lower())
        if match is None:
            return False
        name, port = match.group(1), match.group(2)
        if name in self.extra:
            return True
        return name in self.pinned and (int(port) == self.port if port else self.port == 80)

    def allows_origin(self, origin: str, host_header: str) -> bool:
        """A browser's ``Origin``: this server's own (by the policy, or the request's own ``Host`` when any name goes)."""
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            return False  # "null" (a sandboxed or privacy-preserving page) and anything odd
        if self.any_host:
            return parts.netloc.lower() == host_header.strip().lower()
        return self.allows(parts.netloc)


@dataclass
class RequestStats:
    """Counters for the closing summary, and the number of requests under way for a graceful stop."""

    requests: int = 0
    predictions: int = 0
    errors: int = 0
    in_flight: int = 0
    lock: threading.Condition = field(default_factory=threading.Condition)


class ModelHTTPServer(ThreadingHTTPServer):
    """A thread per connection; daemon threads so an idle keep-alive connection never blocks shutdown."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], model: ServedModel, max_request_bytes: int,
                 max_batch_size: int = DEFAULT_MAX_BATCH_SIZE, allowed_hosts: Sequence[str] = ()) -> None:
        self.model = model
        self.max_request_bytes = max_request_bytes
        self.max_batch_size = max_batch_size
        self.stats = RequestStats()
        super().__init__(address, _RestHandler)
        # after the bind, so port 0 is the port actually chosen
        self.host_policy = HostPolicy.for_bind(address[0], self.server_address[1], allowed_hosts)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def drain(self, timeout: float) -> bool:
        """Wait until no request is being answered (True) or ``timeout`` passes (False)."""
        with self.stats.lock:
            return self.stats.lock.wait_for(lambda: self.stats.in_flight == 0, timeout)


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooled clients reuse their connections
    server_version = "ssp-model-server"
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection gives its thread back after this long
    server: ModelHTTPServer

    def log_message(self, fmt: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):  # called on every request: skip the formatting when unused
            log.debug("%s %s", self.address_string(), fmt % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The base class's own refusals (bad request line, unsupported method) as JSON errors too."""
        self.close_connection = True
        self._reply(code, {"error": message or explain or self.responses.get(code, ("error",))[0]})

    def handle_expect_100(self) -> bool:
        try:
            self._check_headers(self.command)
        except ApiError as err:
            self.close_connection = True
            self._reply(err.status, {"error": err.message})
            return False
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > self.server.max_request_bytes:
            self.close_connection = True
            self._reply(413, {"error": self._too_large(int(length))})
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _check_headers(self, method: str) -> None:
        """Refuse, before the body is read, requests for another host, from another site's page, or not JSON."""
        policy = self.server.host_policy
        host = self.headers.get("Host")
        if host is None and not policy.any_host:
            raise ApiError(403, "the request has no Host header; name this server (e.g. "
                                f"127.0.0.1:{policy.port}) as HTTP/1.1 requires")
        if host is not None and not policy.allows(host):
            raise ApiError(403, f"Host {host!r} does not name this server; it answers to "
                                f"{', '.join(sorted(policy.pinned | policy.extra))} (port {policy.port}); "
                                "add a name with ssp serve --allowed-host")
        origin = self.headers.get("Origin")
        if origin is not None and not policy.allows_origin(origin, host or ""):
            raise ApiError(403, f"cross-origin request from Origin {origin!r} refused: web pages of other sites "
                                "cannot call this server")
        content_type = self.headers.get("Content-Type")
        if method == "POST" and content_type is not None:
            media_type = content_type.split(";", 1)[0].strip()
            if media_type.lower() != "application/json":
                raise ApiError(415, f"Content-Type {media_type!r} is not accepted: send the JSON request body "
                                    "with Content-Type: application/json")

    def _too_large(self, length: int) -> str:
        return (f"request body of {length} bytes is over this server's limit of {self.server.max_request_bytes} "
                "bytes (ssp serve --max-request-bytes)")

    def _read_body(self) -> bytes:
        limit = self.server.max_request_bytes
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > limit:
                    self.close_connection = True
                    raise ApiError(413, self._too_large(total))
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(f"Content-Length {length} is negative")
        if length > limit:
            # Read a moderate excess away so the client, still sending, gets this answer rather than a
            # reset connection; beyond that, close.
            if length <= limit + _DISCARD_BYTES:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(1 << 16, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            else:
                self.close_connection = True
            raise ApiError(413, self._too_large(length))
        return self.rfile.read(length) if length else b""

    def _answer(self, method: str) -> None:
        stats = self.server.stats
        with stats.lock:
            stats.in_flight += 1
            stats.requests += 1
        headers: dict[str, str] = {}
        try:
            try:
                self._check_headers(method)
            except ApiError:
                self.close_connection = True  # the body, if any, is left unread
                raise
            try:
                body = self._read_body() if method == "POST" else b""
            except ValueError as err:
                self.close_connection = True
                raise _bad_request(f"unreadable request body: {err}") from err
            status, payload = 200, self._route(method, urlsplit(self.path).path, body, headers)
        except ApiError as err:
            status, payload = err.status, {"error": err.message}
        except Exception as err:  # a bug must cost one request, not the connection's thread
            log.exception("error answering %s %s", method, self.path)
            status, payload = 500, {"error": f"internal error: {type(err).__name__}: {err}"}
        try:
            self._reply(status, payload, headers)
        finally:
            with stats.lock:
                stats.in_flight -= 1
                stats.errors += status != 200
                stats.lock.notify_all()

    def _reply(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        data = encode_json(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Content-Type-Options", "nosniff")  # errors quote their input: never sniff it as HTML
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
        model = self.server.model
        if not path.lower().startswith("/v1/"):
            raise _not_found(f"no such resource: {method} {path}; the API lives under /v1/models/")
        pattern = _PREDICT_PATH if method == "POST" else _STATUS_PATH
        match = pattern.fullmatch(path)
        if match is None:
            raise _bad_request(f"Malformed request: {method} {path}")
        name, version_text, label_text, verb = match.groups()
        if not name:
            raise _bad_request("Missing model name in request.")
        name = unquote(name)
        label = unquote(label_text) if label_text else None
        version = None
        if version_text:
            version = int(version_text)
            if version > _INT64_MAX:
                raise _bad_request(f"Failed to convert version: {version_text} to numeric.")
        if method == "GET":
            if verb:
                return model.metadata(name, version, label)
            return model.status(name, version, label)
        if verb.lower() != "predict":
            raise ApiError(501, f"ssp's model server answers :predict only, not :{verb} (use tensorflow_model_server)")
        if not body.strip():
            raise _bad_request("JSON Parse error: The document is empty")
        request = decode_json(body)
        loaded = model.resolve(name, version, label)
        response = predict_response(request, loaded, self.server.max_batch_size)
        headers[VERSION_HEADER] = str(loaded.version)
        with self.server.stats.lock:
            self.server.stats.predictions += 1
        return response


# ---------------------------------------------------------------- running it


@dataclass(frozen=True)
class ServeSummary:
    model_name: str
    seconds: float
    requests: int
    predictions: int
    errors: int
    versions_loaded: tuple[int, ...]

    def line(self) -> str:
        versions = ", ".join(map(str, self.versions_loaded)) or "none"
        return (f"served model {self.model_name} for {self.seconds:.1f} s: {self.requests} requests "
                f"({self.predictions} predictions, {self.errors} errors); versions loaded: {versions}")


def _poll_forever(model: ServedModel, every: float, stop: threading.Event) -> None:
    while not stop.wait(every):
        try:
            model.poll_once()
        except Exception:  # e.g. the base folder's file system went away; try again next time
            log.exception("polling %s failed", model.base_path)


def run_server(model_name: str, base_path: Path, host: str, port: int, *, poll_wait_seconds: float = 1.0,
               max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
               allowed_hosts: Sequence[str] = (), version_labels: Mapping[str, int] | None = None,
               stop: threading.Event | None = None, on_ready: Callable[[str], None] | None = None) -> ServeSummary:
    """Serve ``model_name`` from ``base_path`` on ``host:port`` until SIGTERM/SIGINT (or ``stop`` is set).

    ``max_batch_size`` bounds the instances of one request, ``allowed_hosts`` adds ``Host`` names
    to those of the bound address (see the module docstring).

    The versions on disk are loaded before the port opens (as TF Serving does), then the base
    folder is polled every ``poll_wait_seconds``. On a signal the server stops accepting,
    lets the requests under way finish (up to 10 s) and returns what it did.
    """
    if poll_wait_seconds <= 0:
        raise ValueError(f"poll_wait_seconds must be above 0, got {poll_wait_seconds}")
    if max_request_bytes <= 0:
        raise ValueError(f"max_request_bytes must be above 0, got {max_request_bytes}")
    if max_batch_size <= 0:
        raise ValueError(f"max_batch_size must be above 0, got {max_batch_size}")
    HostPolicy.for_bind(host, port, allowed_hosts)  # a bad allowed host fails before the model loads
    base_path = Path(base_path)
    if base_path.exists() and not base_path.is_dir():
        raise NotADirectoryError(f"model base path {base_path} is a file; it must be the folder holding <version>/ folders")
    start = time.monotonic()
    model = ServedModel(model_name, base_path, version_labels)
    model.poll_once()
    if not model.served:
        log.warning("no version of model %s under %s yet (a version is an integer-named folder with a "
                    "saved_model.pb); waiting for one", model_name, base_path)
    httpd = ModelHTTPServer((host, port), model, max_request_bytes, max_batch_size, allowed_hosts)
    stop = stop or threading.Event()
    with stop_on_sigterm(lambda *_: stop.set(), (signal.SIGTERM, signal.SIGINT)):
        _serve_until_stopped(model, httpd, host, stop, poll_wait_seconds, on_ready)
    stats = httpd.stats
    return ServeSummary(model_name, time.monotonic() - start, stats.requests, stats.predictions, stats.errors,
                        tuple(model.loaded_ever))


def _serve_until_stopped(model: ServedModel, httpd: ModelHTTPServer, host: str, stop: threading.Event,
                         poll_wait_seconds: float, on_ready: Callable[[str], None] | None) -> None:
    poller = threading.Thread(target=_poll_forever, args=(model, poll_wait_seconds, stop), name="ssp-model-poller",
                              daemon=True)
    listener = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="ssp-http",
                                daemon=True)
    poller.start()
    listener.start()
    url = f"http://{host}:{httpd.server_address[1]}/v1/models/{model.name}"
    log.info("serving model %s from %s at %s", model.name, model.base_path, url)
    if on_ready is not None:
        on_ready(url)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        httpd.shutdown()
        if not httpd.drain(_SHUTDOWN_DRAIN_SECONDS):
            log.warning("stopping with requests still under way after %.0f s", _SHUTDOWN_DRAIN_SECONDS)
        httpd.server_close()
        stop.set()
        poller.join(timeout=poll_wait_seconds + 5)


def parse_version_labels(items: Sequence[str]) -> dict[str, int]:
    """``["stable=1", "canary=2"]`` -> ``{"stable": 1, "canary": 2}``, refusing anything else by name.

    >>> parse_version_labels(["stable=1", "canary=2"])
    {'stable': 1, 'canary': 2}
    """
    labels: dict[str, int] = {}
    for item in items:
        label, sep, version = item.partition("=")
        label, version = label.strip(), version.strip()
        if not sep or not label or not version.isdigit():
            raise ValueError(f"version label {item!r} must look like LABEL=VERSION, e.g. stable=1")
        if "/" in label or ":" in label:
            raise ValueError(f"version label {label!r} cannot hold '/' or ':' (they delimit REST paths)")
        if label in labels:
            raise ValueError(f"version label {label!r} is given twice")
        labels[label] = int(version)
    return labels

"""What the tagger's views read from a request (parameters, JSON bodies, uploads) and the app state they use."""

from __future__ import annotations

import re
from collections.abc import Sequence

from flask import current_app, g, request

from ssp.active import queue
from ssp.active.loop import ActiveLoop
from ssp.active.strategies import queue_strategy_problem
from ssp.web.common import ParameterError, int_param, single_value
from ssp.web.tagger.names import TWEET_ID
from ssp.web.tagger.store import TableState, TaggerData

EXTENSION = "ssp_tagger"
FILTERS = ("unlabelled", "labelled", "disagree", "all")
MAX_SEARCH = 200
MAX_BATCH = 500
# the API's JSON bodies are a few short fields: a larger or deeper one is not one of them, and parsing
# it would cost time (or, nested deep enough, overflow the parser's recursion)
MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def tagger_data() -> TaggerData:
    return current_app.extensions[EXTENSION]["data"]


def active_loop() -> ActiveLoop | None:
    return current_app.extensions[EXTENSION]["loop"]


def open_table(name: str | None) -> TableState:
    """The table a request is about; a POST (which carries the session's CSRF token) may prepare it, a GET
    only reads."""
    return tagger_data().open(name, prepare=request.method == "POST")


def strategy_arg(args) -> str:
    strategy = single_value(args, "strategy") or current_app.config["SSP_AL"].strategy
    problem = queue_strategy_problem(strategy)
    if problem is not None:
        raise ParameterError("strategy", problem)
    return strategy


def _filter(args) -> str:
    value = single_value(args, "filter") or "unlabelled"
    if value not in FILTERS:
        raise ParameterError("filter", f"filter {value!r} is unknown: expected one of {', '.join(FILTERS)}")
    return value


def _search(args) -> str | None:
    value = single_value(args, "q")
    if value is not None and len(value) > MAX_SEARCH:
        raise ParameterError("q", f"q must be at most {MAX_SEARCH} characters, got {len(value)}")
    if value is not None and any(ord(c) < 0x20 for c in value):
        raise ParameterError("q", "q must not hold control characters")
    return value


def rows_args(args, limit_default: int) -> dict:
    return {"filter_": _filter(args), "strategy": strategy_arg(args), "search": _search(args),
            "after": single_value(args, "after"), "limit": int_param(args, "limit", limit_default, 1, MAX_BATCH)}


def annotator() -> str:
    return g.annotator


def table_status(state: TableState) -> dict:
    data = tagger_data()
    with data.connection() as conn:
        progress = data.progress(state, conn)
        model_version = queue.score_version(conn, state.name)
    loop = active_loop()
    active = loop.status(state) if loop is not None else {
        "model_url": None, "rescore": {"running": False},
        "retrain": {"enabled": False, "reason": "no model server: start the tagger with --model-url to score the "
                                                "queue with the model and retrain as labels come in"}}
    return {"table": state.name, "version": state.version, "progress": progress, "model_version": model_version,
            "strategy": strategy_arg(request.args), "warnings": state.warnings, **active}


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON ``text`` (brackets inside strings do not count), without parsing.

    >>> json_depth('{"a": [1, {"b": "[[["}]}'), json_depth("[]" * 3), json_depth("1")
    (3, 1, 0)
    """
    depth = deepest = 0
    for char in _NOT_A_BRACKET.sub("", _JSON_STRING.sub('""', text)):
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def json_body(*required: str, optional: Sequence[str] = ()) -> dict:
    """The request's JSON object with exactly the ``required`` fields (and maybe ``optional`` ones)."""
    if request.is_json:
        if (request.content_length or 0) > MAX_JSON_BYTES or len(raw := request.get_data(as_text=True)) > MAX_JSON_BYTES:
            raise ParameterError("body", f"the JSON body must be at most {MAX_JSON_BYTES // 1024} KiB")
        if json_depth(raw) > MAX_JSON_DEPTH:
            raise ParameterError("body", f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels: send a flat "
                                         "JSON object")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ParameterError("body", "the request body must be a JSON object")
    for name in body:
        if name not in (*required, *optional):
            raise ParameterError(name, f"unknown field {name!r}: expected {', '.join((*required, *optional))}")
    for name in required:
        if name not in body:
            raise ParameterError(name, f"field {name!r} is required")
    return body


def tweet_id_value(value) -> int:
    if isinstance(value, str) and TWEET_ID.match(value) and int(value) <= 2**63 - 1:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**63 - 1:
        return value
    raise ParameterError("id", f"id must be a tweet id (digits, as a string), got {value!r}")


def label_value(value) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value
    raise ParameterError("label", f"label must be 1 (AI) or 0 (not AI), got {value!r}")


def uploaded_labels() -> bytes:
    upload = request.files.get("file")
    if upload is not None:
        return upload.read()
    if request.mimetype == "text/csv":
        return request.get_data()
    raise ParameterError("file", "send the labels as a CSV file in the form field 'file' (or as a text/csv body)")


def labels_written(state: TableState, n: int) -> None:
    stats = current_app.extensions[EXTENSION]["stats"]
    with stats["lock"]:
        stats["labels"] += n
    loop = active_loop()
    if loop is not None:
        loop.record_labels(state, n)

"""The tagger's pages and JSON API: the ``tagger`` blueprint (signing in is :mod:`ssp.web.tagger.auth`)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request, stream_with_context

from ssp.active.strategies import QUEUE_STRATEGIES
from ssp.web.common import ParameterError, reject_unknown, single_value
from ssp.web.tagger.exports import EXPORT_FORMATS, export_csv, export_jsonl, export_parquet
from ssp.web.tagger.names import ImportRejected
from ssp.web.tagger.request_helpers import (
    active_loop,
    annotator,
    json_body,
    label_value,
    labels_written,
    open_table,
    rows_args,
    table_status,
    tagger_data,
    tweet_id_value,
    uploaded_labels,
)

FILTER_NAMES = {"unlabelled": "unlabelled (queue)", "labelled": "labelled", "disagree": "disagreeing with Snorkel",
                "all": "all"}
LABEL_NAMES = {1: "AI", 0: "not AI"}

bp = Blueprint("tagger", __name__)


def label_text(label: int | None) -> str:
    """The ``label_text`` template filter: AI, not AI, or nothing."""
    return "" if label is None else LABEL_NAMES.get(label, str(label))


@bp.get("/")
def tables_page() -> str:
    reject_unknown(request.args, ())
    return render_template("tagger/tables.html", versions=tagger_data().tables(), strategies=QUEUE_STRATEGIES,
                           default_strategy=current_app.config["SSP_AL"].strategy)


@bp.get("/api/tables")
def tables_api() -> Response:
    reject_unknown(request.args, ())
    return jsonify({"versions": tagger_data().tables()})


_ROWS_ARGS = ("table", "filter", "strategy", "q", "after", "limit")


@bp.get("/tag")
def tag_page() -> str:
    reject_unknown(request.args, _ROWS_ARGS)
    state = open_table(single_value(request.args, "table"))
    args = rows_args(request.args, current_app.config["SSP_WEB"].page_size)
    result = tagger_data().rows(state, **args)
    return render_template("tagger/tag.html", table_name=state.name, result=result, status=table_status(state),
                           filters=FILTER_NAMES,
                           strategies=QUEUE_STRATEGIES, label_names=LABEL_NAMES)


@bp.get("/api/rows")
def rows_api() -> Response:
    reject_unknown(request.args, _ROWS_ARGS)
    state = open_table(single_value(request.args, "table"))
    return jsonify(tagger_data().rows(state, **rows_args(request.args, current_app.config["SSP_WEB"].page_size)))


@bp.get("/api/status")
def status_api() -> Response:
    reject_unknown(request.args, ("table", "strategy"))
    return jsonify(table_status(open_table(single_value(request.args, "table"))))


@bp.get("/stats")
def stats_page() -> str:
    reject_unknown(request.args, ("table",))
    state = open_table(single_value(request.args, "table"))
    return render_template("tagger/stats.html", table_name=state.name, status=table_status(state),
                           agreement=tagger_data().agreement(state), formats=EXPORT_FORMATS, imported=None, import_error=None)


@bp.get("/api/agreement")
def agreement_api() -> Response:
    reject_unknown(request.args, ("table",))
    return jsonify(tagger_data().agreement(open_table(single_value(request.args, "table"))))


@bp.post("/api/label")
def label_api() -> Response:
    body = json_body("table", "id", "label")
    state = open_table(body["table"] if isinstance(body["table"], str) else None)
    result = tagger_data().label(state, tweet_id_value(body["id"]), label_value(body["label"]), annotator())
    labels_written(state, 1)
    return jsonify(result)


@bp.post("/api/skip")
def skip_api() -> Response:
    body = json_body("table", "id")
    state = open_table(body["table"] if isinstance(body["table"], str) else None)
    return jsonify(tagger_data().skip(state, tweet_id_value(body["id"]), annotator()))


@bp.post("/api/undo")
def undo_api() -> Response:
    body = json_body("table", "id", "history_id")
    state = open_table(body["table"] if isinstance(body["table"], str) else None)
    history_id = body["history_id"]
    if isinstance(history_id, bool) or not isinstance(history_id, int) or history_id < 1:
        raise ParameterError("history_id", f"history_id must be the positive integer a label answer gave, "
                                           f"got {history_id!r}")
    return jsonify(tagger_data().undo(state, tweet_id_value(body["id"]), history_id, annotator()))


@bp.post("/api/import")
def import_api() -> Response | tuple[Response, int]:
    reject_unknown(request.args, ("table",))
    state = open_table(single_value(request.args, "table") or request.form.get("table"))
    try:
        imported = tagger_data().import_labels(state, uploaded_labels(), annotator())
    except ImportRejected as err:
        body = {"error": str(err), "errors": [{"line": line, "error": message} for line, message in err.errors],
                "bad_rows": err.total}
        return jsonify(body), 400
    labels_written(state, imported)
    return jsonify({"table": state.name, "imported": imported})


@bp.post("/import")
def import_form() -> tuple[str, int]:
    state = open_table(request.form.get("table"))
    imported, error, status = None, None, 200
    try:
        imported = tagger_data().import_labels(state, uploaded_labels(), annotator())
        labels_written(state, imported)
    except ImportRejected as err:
        error, status = err, 400
    return render_template("tagger/stats.html", table_name=state.name, status=table_status(state),
                           agreement=tagger_data().agreement(state), formats=EXPORT_FORMATS, imported=imported,
                           import_error=error), status


@bp.get("/api/export")
def export_api() -> Response:
    reject_unknown(request.args, ("table", "format"))
    state = open_table(single_value(request.args, "table"))
    fmt = single_value(request.args, "format") or "csv"
    if fmt not in EXPORT_FORMATS:
        raise ParameterError("format", f"format {fmt!r} is unknown: expected one of {', '.join(EXPORT_FORMATS)}")
    rows = tagger_data().export_rows(state.name)
    body = {"csv": export_csv, "jsonl": export_jsonl, "parquet": export_parquet}[fmt](rows)
    response = Response(stream_with_context(body), mimetype=EXPORT_FORMATS[fmt].split(";")[0])
    if fmt == "csv":
        response.headers["Content-Type"] = EXPORT_FORMATS["csv"]
    response.headers["Content-Disposition"] = f'attachment; filename="{state.name}_labels.{fmt}"'
    return response


@bp.post("/api/rescore")
def rescore_api() -> tuple[Response, int]:
    body = json_body("table")
    state = open_table(body["table"] if isinstance(body["table"], str) else None)
    loop = active_loop()
    if loop is None:
        return jsonify({"error": "no model server: start the tagger with --model-url to score the queue"}), 409
    started = loop.rescore(state.name, reason=f"asked by {annotator()}")
    return jsonify({"table": state.name, "started": started, **loop.status(state)}), 202 if started else 200

"""``ssp cluster view``: a live Bokeh page of a clustering stream, read from its PostgreSQL tables.

Every browser session polls the tables every ``poll_ms`` (250 ms) with its own cursors: new assignments
after the last (batch, Kafka partition, offset) it has, new centres rows after the last micro-batch it
has. Points are streamed into the page with ``rollover`` (the newest ``points`` stay: memory is
bounded however long the page is open), coloured by cluster; the centres are drawn with their trails
over the last ``trail`` micro-batches; one plot shows each cluster's weight over micro-batches and one
the number of clusters, which is constant for k-means and is where the births and deaths of the
Dirichlet-process algorithms will show. Clusters are keyed by index, so a new index is a new colour,
trail and weight line with no change here.

The server is ``bokeh.server.server.Server`` bound to ``127.0.0.1`` (by default), accepting websocket
connections only from pages served at that same ``host:port``; it serves Bokeh's JavaScript itself,
so the page needs no CDN. :class:`ClusterViewState` is the reading side without Bokeh, testable alone.

>>> xy([[1.0, 2.0, 3.0], [4.0]])
([1.0, 4.0], [2.0, 0.0])
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from ssp.errors import SspError, database_reason
from ssp.storage.clusters import (
    AssignmentCursor,
    AssignmentRow,
    CentreRow,
    ClusterTables,
    assignments_after,
    centres_history,
    ensure_cluster_tables,
    latest_model,
    merges_after,
)
from ssp.storage.postgres import make_engine
from ssp.streaming.cluster_stream import cluster_colour

log = logging.getLogger(__name__)

__all__ = ["ClusterViewServer", "ClusterViewState", "serve_view", "xy"]


def xy(coordinates: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    """The first two coordinates of each point (a 1-D point is drawn on y = 0)."""
    return [c[0] for c in coordinates], [c[1] if len(c) > 1 else 0.0 for c in coordinates]


@dataclass
class ViewUpdate:
    """What one poll found: new points, and whether the centres changed (then the centre sources are redrawn)."""

    points: list[AssignmentRow] = field(default_factory=list)
    centres_changed: bool = False
    new_batches: list[tuple[int, int]] = field(default_factory=list)  # (batch id, number of clusters)
    merged: bool = False  # clusters merged since the last poll: points already drawn change colour


class ClusterViewState:
    """One browser session's cursors and the centre history it shows, read from the tables."""

    def __init__(self, engine: Engine, tables: ClusterTables, job: str | None, *, points: int, trail: int) -> None:
        self.engine, self.tables, self.job = engine, tables, job
        self.points_limit, self.trail = points, trail
        self.cursor: AssignmentCursor | None = None
        self.last_batch: int | None = None
        self.received = 0
        # cluster -> [(batch, centre, weight)], the last ``trail`` micro-batches
        self.history: dict[int, list[tuple[int, list[float], float]]] = {}
        self.merges: dict[int, int] = {}  # absorbed cluster -> the one it went into (ids are never reused)
        self.last_merge_batch: int | None = None

    def final(self, cluster: int) -> int:
        """The cluster ``cluster`` is part of now, after the merges read so far."""
        while cluster in self.merges:
            cluster = self.merges[cluster]
        return cluster

    def _resolve_job(self) -> str | None:
        if self.job is None:
            stored = latest_model(self.engine, self.tables.version, None, self.tables.models)
            self.job = None if stored is None else stored.job
        return self.job

    def poll(self) -> ViewUpdate:
        """Read what arrived since the last poll (the first poll reads the newest ``points`` and ``trail``)."""
        update = ViewUpdate()
        job = self._resolve_job()
        if job is None:
            return update
        merges = merges_after(self.engine, self.tables, job, self.last_merge_batch)
        for batch_id, absorbed, survivor in merges:
            self.merges[absorbed] = survivor
            self.history.pop(absorbed, None)  # its trail ends where it merged
            self.last_merge_batch = batch_id
        update.merged = bool(merges)
        rows, self.cursor = assignments_after(self.engine, self.tables, job, self.cursor, self.points_limit)
        update.points, self.received = rows, self.received + len(rows)
        if self.last_batch is None:
            centres = centres_history(self.engine, self.tables, job, last_batches=self.trail)
        else:
            centres = centres_history(self.engine, self.tables, job, after_batch=self.last_batch)
        if centres:
            update.centres_changed = True
            update.new_batches = self._add_centres(centres)
        return update

    def _add_centres(self, rows: list[CentreRow]) -> list[tuple[int, int]]:
        per_batch: dict[int, int] = {}
        for row in rows:
            if row.cluster in self.merges:  # read before its merge, in the same poll
                continue
            self.history.setdefault(row.cluster, []).append((row.batch_id, row.centre, row.weight))
            per_batch[row.batch_id] = per_batch.get(row.batch_id, 0) + 1
        self.last_batch = max(per_batch)
        oldest = self.last_batch - self.trail + 1
        self.history = {cluster: [entry for entry in entries if entry[0] >= oldest]
                        for cluster, entries in self.history.items()}
        self.history = {cluster: entries for cluster, entries in self.history.items() if entries}
        return sorted(per_batch.items())

    def centre_columns(self) -> dict[str, dict[str, list]]:
        """The column data of the centres, trails and weight lines, one row per cluster."""
        clusters = sorted(self.history)
        current = [self.history[c][-1] for c in clusters]
        centre_x, centre_y = xy([entry[1] for entry in current])
        trails = [xy([entry[1] for entry in self.history[c]]) for c in clusters]
        colours = [cluster_colour(c) for c in clusters]
        return {
            "centres": {"x": centre_x, "y": centre_y, "cluster": clusters, "colour": colours,
                        "weight": [entry[2] for entry in current]},
            "trails": {"xs": [t[0] for t in trails], "ys": [t[1] for t in trails], "cluster": clusters,
                       "colour": colours},
            "weights": {"xs": [[entry[0] for entry in self.history[c]] for c in clusters],
                        "ys": [[entry[2] for entry in self.history[c]] for c in clusters], "cluster": clusters,
                        "colour": colours},
        }


def point_columns(rows: Sequence[AssignmentRow], final=lambda cluster: cluster) -> dict[str, list]:
    """The column data of new points for the points source's ``stream``, each in the cluster ``final``
    says it is part of now."""
    xs, ys = xy([row.x for row in rows])
    clusters = [final(row.cluster) for row in rows]
    return {"x": xs, "y": ys, "cluster": clusters, "colour": [cluster_colour(c) for c in clusters],
            "batch": [row.batch_id for row in rows], "point_id": [row.point_id for row in rows]}


def merge_patches(clusters: Sequence[int], final) -> dict[str, list[tuple[int, object]]]:
    """The ``ColumnDataSource.patch`` that recolours the points on screen whose cluster merged: only those
    rows are sent to the browser, not the whole source.

    >>> merge_patches([3, 5, 3, 7], lambda cluster: {3: 5}.get(cluster, cluster))["cluster"]
    [(0, 5), (2, 5)]
    """
    changed = [(index, final(cluster)) for index, cluster in enumerate(clusters) if final(cluster) != cluster]
    return {"cluster": changed, "colour": [(index, cluster_colour(cluster)) for index, cluster in changed]}


class ClusterViewServer:
    """The Bokeh server of the live view, on its own thread and event loop; :func:`serve_view` starts one."""

    def __init__(self, database_url: str, version: int, port: int, *, host: str = "127.0.0.1",
                 job: str | None = None, poll_ms: int = 250, points: int = 5000, trail: int = 200) -> None:
        self.tables = ClusterTables.for_version(version)
        self.engine = make_engine(database_url)
        self.host, self.port, self.job = host, int(port), job
        self.poll_ms, self.points, self.trail = max(int(poll_ms), 50), max(int(points), 1), max(int(trail), 1)
        self.sessions_opened = 0
        self._thread: threading.Thread | None = None
        self._loop = None
        self._server = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # ------------------------------------------------------------------ the page
    def make_document(self, doc) -> None:
        """Build one session's page and its polling callback (Bokeh's FunctionHandler calls this)."""
        from bokeh.layouts import column, row
        from bokeh.models import ColumnDataSource, Div

        self.sessions_opened += 1
        state = ClusterViewState(self.engine, self.tables, self.job, points=self.points, trail=self.trail)
        sources = {
            "points": ColumnDataSource(point_columns([]), name="points"),
            "centres": ColumnDataSource({"x": [], "y": [], "cluster": [], "colour": [], "weight": []}, name="centres"),
            "trails": ColumnDataSource({"xs": [], "ys": [], "cluster": [], "colour": []}, name="trails"),
            "weights": ColumnDataSource({"xs": [], "ys": [], "cluster": [], "colour": []}, name="weights"),
            "count": ColumnDataSource({"batch": [], "clusters": []}, name="cluster_count"),
        }
        status = Div(text="waiting for the stream ...", name="status", styles={"font-family": "monospace"})
        scatter, weights, count = _figures(sources, self.tables.version)
        doc.title = f"ssp clusters, version {self.tables.version}"
        doc.add_root(column(status, row(scatter, column(weights, count)), name="layout"))

        def tick() -> None:
            try:
                update = state.poll()
            except Exception as err:  # a database that went away: say so on the page and keep polling
                status.text = f"cannot read the tables: {database_reason(err)}"
                return
            self._apply(update, state, sources)
            status.text = _status_text(state, len(sources["points"].data["x"]))

        tick()
        doc.add_periodic_callback(tick, self.poll_ms)

    def _apply(self, update: ViewUpdate, state: ClusterViewState, sources: dict) -> None:
        if update.merged:
            patches = merge_patches(sources["points"].data["cluster"], state.final)
            if patches["cluster"]:
                sources["points"].patch(patches)
        if update.points:
            sources["points"].stream(point_columns(update.points, state.final), rollover=self.points)
        if update.centres_changed:
            for name, data in state.centre_columns().items():
                sources[name].data = data
        if update.new_batches:
            batches, counts = zip(*update.new_batches, strict=True)
            sources["count"].stream({"batch": list(batches), "clusters": list(counts)}, rollover=self.trail)

    # ------------------------------------------------------------------ the server
    def start(self) -> ClusterViewServer:
        """Start serving on a thread of its own; returns once the port is bound (or raises why it is not)."""
        ensure_cluster_tables(self.engine, self.tables)
        self._thread = threading.Thread(target=self._run, name="ssp-cluster-view", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._failure is not None:
            raise SspError(f"cannot serve the cluster view on {self.host}:{self.port}: {self._failure}") \
                from self._failure
        return self

    def _run(self) -> None:
        from bokeh.application import Application
        from bokeh.application.handlers.function import FunctionHandler
        from bokeh.server.server import Server
        from tornado.ioloop import IOLoop

        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            self._loop = IOLoop.current()
            self._server = Server({"/": Application(FunctionHandler(self.make_document))}, io_loop=self._loop,
                                  address=self.host, port=self.port, num_procs=1,
                                  allow_websocket_origin=[f"{self.host}:{self.port}"])
            self._server.start()
        except Exception as err:  # the port is taken, the address is not ours: start() reports it
            self._failure = err
            self._ready.set()
            return
        self._ready.set()
        self._loop.start()

    def stop(self) -> None:
        """Stop the server and its thread, and close the database connections."""
        if self._loop is not None and self._server is not None:
            server, loop = self._server, self._loop

            def shutdown() -> None:
                server.stop()
                loop.stop()

            loop.add_callback(shutdown)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.engine.dispose()


def _figures(sources: dict, version: int):
    from bokeh.plotting import figure

    scatter = figure(title=f"points by cluster, centres and their trails (version {version})", width=760, height=640,
                     match_aspect=True, output_backend="webgl", name="clusters",
                     tools="pan,wheel_zoom,box_zoom,reset,save")
    scatter.scatter("x", "y", source=sources["points"], color="colour", size=4, alpha=0.5)
    scatter.multi_line("xs", "ys", source=sources["trails"], line_color="colour", line_width=2, line_alpha=0.8)
    scatter.scatter("x", "y", source=sources["centres"], marker="x", size=18, line_width=4, color="colour")
    weights = figure(title="weight per cluster over micro-batches", width=480, height=310, name="weights",
                     x_axis_label="micro-batch", tools="pan,wheel_zoom,reset")
    weights.multi_line("xs", "ys", source=sources["weights"], line_color="colour", line_width=2)
    count = figure(title="clusters over micro-batches", width=480, height=310, name="cluster_count",
                   x_axis_label="micro-batch", tools="pan,wheel_zoom,reset")
    count.step("batch", "clusters", source=sources["count"], mode="after", line_width=2)
    return scatter, weights, count


def _status_text(state: ClusterViewState, shown: int) -> str:
    if state.job is None:
        return f"version {state.tables.version}: no clustering job has written it yet; waiting for the stream ..."
    batch = "none yet" if state.last_batch is None else state.last_batch
    return (f"job {state.job} · version {state.tables.version} · micro-batch {batch} · {len(state.history)} clusters "
            f"· {shown} points on screen ({state.received} received)")


def serve_view(database_url: str, version: int, port: int = 5006, *, host: str = "127.0.0.1", job: str | None = None,
               poll_ms: int = 250, points: int = 5000, trail: int = 200) -> ClusterViewServer:
    """Start the live view of ``version``'s clustering tables on ``http://host:port/``; returns the running
    server (``.url``, ``.stop()``). Websocket connections are accepted only from pages of that host:port."""
    return ClusterViewServer(database_url, version, port, host=host, job=job, poll_ms=poll_ms, points=points,
                             trail=trail).start()

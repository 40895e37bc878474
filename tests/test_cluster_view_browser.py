"""The live cluster view (Bokeh) in a real headless Chromium: the page renders, points written to the tables
after it opened arrive without a reload, and a screenshot is saved."""

from __future__ import annotations

import time

import numpy as np
import psycopg2
import pytest

from browser import chromium_page, save_screenshot
from ssp.clustering.streaming_kmeans import StreamingKMeans
from ssp.infra.process import free_port
from ssp.storage.clusters import (
    BatchCommit,
    ClusterTables,
    commit_batch,
    ensure_cluster_tables,
    pg_float_array_literal,
    stage_assignments,
)
from ssp.storage.postgres import make_engine
from ssp.web.cluster_view import serve_view
from test_dashboard import fresh_version

pytestmark = pytest.mark.integration

JOB = "kmeans:view-test"
TRUE_CENTRES = np.array([[-6.0, 0.0], [5.0, 5.0], [4.0, -6.0]])


def write_batch(database_url: str, tables: ClusterTables, model: StreamingKMeans, batch_id: int, rng,
                n: int) -> None:
    """One micro-batch as the stream job writes it: stage the assignments, then commit them with the model."""
    truth = rng.integers(0, len(TRUE_CENTRES), n)
    points = TRUE_CENTRES[truth] + rng.standard_normal((n, 2)) * 0.8
    labels = model.learn_predict_many(points)
    first = batch_id * n
    rows = [(JOB, first + i, batch_id, int(labels[i]), "2024-03-04T08:00:00+00:00", pg_float_array_literal(points[i]),
             int(truth[i]), 0, first + i) for i in range(n)]
    conn = psycopg2.connect(database_url)
    try:
        stage_assignments(conn, tables, rows)
        conn.commit()
        counts = np.bincount(labels, minlength=model.k)
        assert commit_batch(conn, tables, BatchCommit(
            job=JOB, version=tables.version, batch_id=batch_id, algorithm="kmeans", state=model.to_state(),
            centres=model.centres.tolist(), weights=model.weights.tolist(), counts=counts.tolist(), points=n,
            learned=True))
        conn.commit()
    finally:
        conn.close()


def source_length(page, name: str) -> int:
    return page.evaluate(
        "(name) => { const doc = window.Bokeh && Bokeh.documents[0]; const model = doc && doc.get_model_by_name(name);"
        " return model ? model.data.x.length : -1; }", name)


def test_the_live_view_renders_and_new_points_arrive(stack, tmp_path, capsys):
    version = fresh_version()
    tables = ClusterTables.for_version(version)
    engine = make_engine(stack.database_url)
    ensure_cluster_tables(engine, tables)
    engine.dispose()
    rng = np.random.default_rng(4)
    model = StreamingKMeans(k=3, dim=2, half_life=3, seed=1)
    for batch_id in range(4):
        write_batch(stack.database_url, tables, model, batch_id, rng, 150)

    port = free_port()
    server = serve_view(stack.database_url, version, port, poll_ms=250, points=1000, trail=50)
    try:
        with chromium_page() as browser:
            page = browser.page
            page.goto(server.url)
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && "
                                   "Bokeh.documents[0].get_model_by_name('points').data.x.length === 600")
            assert page.locator("canvas").count() >= 3  # the clusters, the weights and the cluster count
            assert source_length(page, "centres") == 3
            status = page.locator("text=micro-batch 3")
            status.wait_for()
            assert "3 clusters" in status.text_content()

            written = time.monotonic()
            write_batch(stack.database_url, tables, model, 4, rng, 150)
            page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('points').data.x.length === 750",
                                   timeout=5_000)
            arrived = time.monotonic() - written
            assert arrived < 1.5, f"new points took {arrived:.2f} s to arrive"
            # rollover keeps at most 1000 points on screen
            for batch_id in range(5, 8):
                write_batch(stack.database_url, tables, model, batch_id, rng, 150)
            page.wait_for_function("() => Bokeh.documents[0].get_model_by_name('points').data.x.length === 1000")
            page.locator("text=micro-batch 7").wait_for()
            save_screenshot(page, tmp_path / "cluster-view.png", capsys)
            assert browser.dialogs == []
            assert browser.console_errors == []
    finally:
        server.stop()

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


def test_many_clusters_get_distinct_colours_and_a_merge_recolours_the_points_drawn(stack, tmp_path, capsys):
    """Twelve clusters (as DP-means opens them), then cluster 11 merges into 10: the page shows the count
    fall to 11 and the points already on screen take the survivor's colour (a patch, not a re-send)."""
    from ssp.streaming.cluster_stream import cluster_colour

    version, job = fresh_version(), "dpmeans:view-test"
    tables = ClusterTables.for_version(version)
    engine = make_engine(stack.database_url)
    ensure_cluster_tables(engine, tables)
    engine.dispose()
    rng = np.random.default_rng(7)
    grid = np.array([[x, y] for x in range(4) for y in range(3)], dtype=float) * 10.0  # 12 centres, 10 apart
    assert len({cluster_colour(c) for c in range(len(grid))}) == len(grid)

    def commit(batch_id: int, ids: list[int], merges: dict[int, int]) -> None:
        labels = rng.choice(ids, 240)
        points = grid[labels] + rng.standard_normal((len(labels), 2))
        first = batch_id * len(labels)
        rows = [(job, first + i, batch_id, int(labels[i]), None, pg_float_array_literal(points[i]), int(labels[i]),
                 0, first + i) for i in range(len(labels))]
        conn = psycopg2.connect(stack.database_url)
        try:
            stage_assignments(conn, tables, rows)
            conn.commit()
            assert commit_batch(conn, tables, BatchCommit(
                job=job, version=version, batch_id=batch_id, algorithm="dpmeans", state={"model": "dpmeans"},
                centres=grid[ids].tolist(), weights=[20.0] * len(ids), counts=[20] * len(ids), cluster_ids=ids,
                merges=merges, points=len(rows), learned=True))
            conn.commit()
        finally:
            conn.close()

    commit(0, list(range(12)), {})
    server = serve_view(stack.database_url, version, free_port(), job=job, poll_ms=200, points=2000, trail=20)
    try:
        with chromium_page() as browser:
            page = browser.page
            page.goto(server.url)
            page.locator("text=12 clusters").wait_for()
            clusters = "() => Bokeh.documents[0].get_model_by_name('points').data.cluster"
            assert set(page.evaluate(clusters)) == set(range(12))
            commit(1, list(range(11)), {11: 10})
            page.locator("text=11 clusters").wait_for()
            page.wait_for_function(f"() => ({clusters})().length === 480")
            drawn = page.evaluate(clusters)
            assert 11 not in drawn and drawn.count(10) > 0
            colours = page.evaluate("() => Bokeh.documents[0].get_model_by_name('points').data.colour")
            assert {colour for cluster, colour in zip(drawn, colours, strict=True) if cluster == 10} == \
                {cluster_colour(10)}
            assert source_length(page, "centres") == 11
            save_screenshot(page, tmp_path / "cluster-view-merge.png", capsys)
            assert browser.console_errors == []
    finally:
        server.stop()

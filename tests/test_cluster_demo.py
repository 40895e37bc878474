"""The clustering use case from the command line: `ssp produce --source points` into a real broker, its
clear errors, and `ssp demo --use-case kmeans` end to end (stream, model in PostgreSQL, live view, Ctrl-C)."""

from __future__ import annotations

import os
import sys
import time
import urllib.request

import orjson
import pytest
from click.testing import CliRunner

from helpers import DemoRun
from ssp.cli import main
from ssp.infra.process import free_port, port_is_open
from ssp.sources.points import points_payloads
from test_dashboard import fresh_version
from test_producer import _consume

pytestmark = pytest.mark.integration


def test_points_go_to_kafka_keyed_by_id_as_the_source_draws_them(stack, unique_name):
    topic = unique_name("points")
    result = CliRunner().invoke(main, ["produce", "--source", "points", "--topic", topic, "--max-records", "120",
                                       "--k", "2", "--dim", "3", "--scenario", "static", "--seed", "9"])
    assert result.exit_code == 0, result.output
    assert f"produced 120 points to {topic}, 0 failed" in result.output
    records = _consume(os.environ["SSP_KAFKA_BOOTSTRAP"], topic, 120)
    want = {str(p["id"]).encode(): p for p in points_payloads(120, seed=9, k=2, dim=3, scenario="static")}
    assert len(records) == 120
    assert {r.key: orjson.loads(r.value) for r in records} == want


@pytest.mark.parametrize(("args", "message"), [
    (["--ai-topic"], "points have none"),
    (["--scenario", "spiral"], "unknown preset 'spiral'"),
    (["--scenario", '{"dim": 2, "centres": [{"at": [0]}]}'], "centres[0].at"),
    (["--scenario", "/nonexistent/scenario.json"], "cannot read the scenario file"),
])
def test_bad_points_options_are_refused_with_the_reason(args, message):
    result = CliRunner().invoke(main, ["produce", "--source", "points", "--max-records", "1", *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_points_options_need_the_points_source():
    result = CliRunner().invoke(main, ["produce", "--source", "synthetic", "--k", "4"])
    assert result.exit_code == 1 and "use them with --source points" in result.output, result.output


def test_kmeans_demo_streams_clusters_and_serves_the_view_then_stops_cleanly(stack, db, unique_name):
    topic, version, port = unique_name("demo_points"), fresh_version(), free_port()
    argv = [sys.executable, "-m", "ssp.cli"]
    for binding in (f"TopicsConfig.points_topic = '{topic}'", f"ClusterConfig.view_port = {port}",
                    "ClusterConfig.trigger_seconds = 0.5", "InfraConfig.spark_master = 'local[2]'",
                    "InfraConfig.spark_driver_memory = '1g'"):
        argv += ["--gin-param", binding]
    argv += ["demo", "--use-case", "kmeans", "--version", str(version), "--rate", "400", "--half-life", "5"]
    demo = DemoRun(argv)
    try:
        assert demo.wait_ready(300), demo.text[-4000:]
        text = demo.text
        assert all(f"[{step}/4]" in text for step in range(1, 5)) and f"http://127.0.0.1:{port}/" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200 and b"bokeh" in response.read().lower()
        # the stream job commits models of the points the producer streams, micro-batch by micro-batch
        batches, deadline = 0, time.monotonic() + 240
        while batches < 3 and time.monotonic() < deadline:
            time.sleep(2)
            with db.cursor() as cur:
                cur.execute("SELECT count(*), coalesce(max((state->>'points')::bigint), 0), min(job), max(job) "
                            "FROM cluster_models WHERE version = %s", (version,))
                batches, points, job, last_job = cur.fetchone()
        # the run's own topic: <TopicsConfig.points_topic>_<time>, so its model starts from this run's points
        assert job == last_job and job.startswith(f"kmeans:{topic}_"), job
        assert batches >= 3 and points > 0, demo.text[-4000:]
    finally:
        code = demo.stop()
    text = demo.text
    assert code == 0, text[-3000:]
    for name in ("points stream", "kmeans stream", "cluster view"):
        assert f"stopped {name} (exit code 0)" in text, text[-3000:]
    assert not port_is_open("127.0.0.1", port), "the view's port is still open after the demo stopped"

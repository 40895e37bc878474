"""Benchmark: the tagger's page loads and API calls on a 100,000-row dataset table.

Builds ``train_dataset_<v>`` with N synthetic tweets (Snorkel probabilities on all, gold labels on
5 %) in a PostgreSQL started for the run (or ``$SSP_DATABASE_URL``), serves the tagger with
werkzeug's threaded server on a free loopback port as ``ssp tagger`` does, signs in, and times
each page and API call over real HTTP, one call at a time: first with Snorkel's probabilities only
(no model yet), then with a model score for every row in ``model_scores`` (as
``queue.refresh_scores`` leaves it). Labels and undos write for real.

For each call it also counts the sequential scans PostgreSQL made of the dataset table,
``model_scores`` and ``label_history`` (from ``pg_stat_user_tables``; the app's connections are
closed after each call kind so their statistics are flushed): 0 means indexes served it.

It prints p50/p95 per call and, last, one JSON object with the figures.

    .venv/bin/python bench/tagger.py --rows 100000 --repeat 50
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
import requests

TOKEN = "bench-tagger-token-0123456789"
WORDS = ("the a new of and to in model neural deep learning transformer llm gpu paper dataset training inference "
         "football match goal lunch coffee weather cat dog music concert game night city train bus").split()


def start_postgres(state_dir: Path):
    from ssp.config import InfraConfig
    from ssp.infra.postgres_server import PostgresServer
    from ssp.infra.process import free_port

    config = InfraConfig(postgres_port=free_port())
    server = PostgresServer(config, state_dir)
    server.start()
    return server, server.database_url


def build_table(url: str, n: int, seed: int) -> str:
    from ssp.storage.postgres import copy_insert_ignore_conflicts, ensure_tables, make_engine, pg_array_literal
    from ssp.storage.tables import DATASET_COLUMNS, dataset_table, split_table_name

    rng = random.Random(seed)
    table = split_table_name("train", rng.randint(10**8, 9 * 10**8))
    engine = make_engine(url)
    ensure_tables(engine, dataset_table(table))
    engine.dispose()
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 30)))
        prob = rng.random()
        label = (1 if rng.random() < prob else 0) if rng.random() < 0.05 else None
        rows.append((1_700_000_000_000_000_000 + i * 7919, "2026-01-01T00:00:00+00:00", text, "en", f"user{i % 3000}",
                     pg_array_literal([]), pg_array_literal([]), False, text, 1, int(prob >= 0.5), prob, label,
                     None if label is None else "gold", None if label is None else "2026-01-02T00:00:00+00:00"))
    conn = psycopg2.connect(url)
    copy_insert_ignore_conflicts(conn, table, DATASET_COLUMNS, rows, ("id",))
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"VACUUM ANALYZE {table}")
    conn.close()
    return table


def score_all(url: str, table: str, seed: int, version: int = 1) -> None:
    """Model scores for every row, as refresh_scores writes them (without a model server: this times the tagger)."""
    from ssp.active.queue import ensure_model_scores

    rng = random.Random(seed)
    conn = psycopg2.connect(url)
    ensure_model_scores(conn)
    with conn.cursor() as cur:
        cur.execute(f"SELECT id FROM {table}")
        ids = [row[0] for row in cur.fetchall()]
        buffer = io.StringIO("".join(f"{table}\t{i}\t{version}\t{rng.random()!r}\n" for i in ids))
        cur.copy_expert("COPY model_scores (table_name, tweet_id, model_version, ai_prob) FROM STDIN", buffer)
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE model_scores")
    conn.close()


def seq_scans(url: str, tables: list[str]) -> dict[str, int]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT relname, seq_scan FROM pg_stat_user_tables WHERE relname = ANY(%s)", (tables,))
            return dict(cur.fetchall())
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the dataset table (default 100000)")
    parser.add_argument("--repeat", type=int, default=50, help="timed calls per kind (default 50)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if args.rows < 1000 or args.repeat < 5:
        parser.error("--rows must be at least 1000 and --repeat at least 5")

    os.environ["SSP_TAGGER_TOKEN"] = TOKEN
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log line per timed call
    from ssp.config import WebConfig
    from ssp.storage.tables import LABEL_HISTORY_TABLE, MODEL_SCORES_TABLE
    from ssp.web.common import make_wsgi_server, server_url
    from ssp.web.tagger import create_app

    state = tempfile.TemporaryDirectory(prefix="ssp-bench-tagger-")
    postgres = None
    url = os.environ.get("SSP_DATABASE_URL")
    if not url:
        postgres, url = start_postgres(Path(state.name))
    try:
        start = time.monotonic()
        table = build_table(url, args.rows, args.seed)
        print(f"built {table} with {args.rows} rows in {time.monotonic() - start:.1f} s", flush=True)

        app = create_app(url, WebConfig(page_size=50))
        engine = app.extensions["ssp_tagger"]["data"].engine
        server = make_wsgi_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = server_url("127.0.0.1", server.server_port)
        http = requests.Session()
        login = http.get(base + "login", timeout=30).text
        csrf = login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        http.post(base + "login", data={"name": "bench", "token": TOKEN, "csrf_token": csrf}, timeout=30,
                  allow_redirects=False).raise_for_status()
        csrf = http.get(base, timeout=30).text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]

        start = time.monotonic()
        http.get(base + "api/status", params={"table": table}, timeout=600).raise_for_status()
        first_open = time.monotonic() - start
        print(f"first open (creates the indexes): {first_open:.2f} s", flush=True)

        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT id FROM {table} WHERE label IS NULL ORDER BY id LIMIT %s", (args.repeat * 2 + 10,))
            free_ids = [str(row[0]) for row in cur.fetchall()]
        watched = [table, MODEL_SCORES_TABLE, LABEL_HISTORY_TABLE]
        results: dict[str, dict] = {}

        def run(name: str, call, repeat: int = args.repeat) -> None:
            for _ in range(3):
                call(-1)
            engine.dispose()
            time.sleep(0.3)
            before = seq_scans(url, watched)
            times = []
            for i in range(repeat):
                t = time.perf_counter()
                call(i)
                times.append((time.perf_counter() - t) * 1000)
            engine.dispose()  # closed backends flush their statistics
            time.sleep(0.5)
            after = seq_scans(url, watched)
            scans = {k: after.get(k, 0) - before.get(k, 0) for k in watched}
            results[name] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(percentile(times, 0.95), 2),
                             "calls": repeat, "seq_scans": {k: v for k, v in scans.items() if v}}
            print(f"{name:44s} p50 {results[name]['p50_ms']:8.2f} ms   p95 {results[name]['p95_ms']:8.2f} ms   "
                  f"seq scans {results[name]['seq_scans'] or 0}", flush=True)

        def get(path: str, **params):
            def call(_: int) -> None:
                response = http.get(base + path, params={"table": table, **params}, timeout=60)
                response.raise_for_status()
                response.content  # noqa: B018 - read the whole body, as a browser would
            return call

        def next_cursor(strategy: str) -> str:
            return http.get(base + "api/rows", params={"table": table, "strategy": strategy}, timeout=60).json()["next"]

        def reads(prefix: str) -> None:
            run(f"{prefix}page /tag (queue, least_confidence)", get("tag"))
            for strategy in ("least_confidence", "entropy", "disagreement", "random"):
                run(f"{prefix}api/rows queue {strategy}", get("api/rows", strategy=strategy))
            run(f"{prefix}api/rows queue page 2", get("api/rows", after=next_cursor("least_confidence")))
            run(f"{prefix}api/rows queue search 'gpu paper'", get("api/rows", q="gpu paper"))

        reads("")
        run("api/rows filter=labelled", get("api/rows", filter="labelled"))
        run("api/rows filter=disagree", get("api/rows", filter="disagree"))
        run("api/rows filter=all page 100", get("api/rows", filter="all", after=str(1_700_000_000_000_000_000 +
                                                                                    5000 * 7919)))
        run("api/rows filter=all search 'coffee cat'", get("api/rows", filter="all", q="coffee cat"))
        run("api/status", get("api/status"))

        labelled: list[tuple[str, int]] = []

        def label(i: int) -> None:
            tweet_id = free_ids[i + 3]
            response = http.post(base + "api/label", json={"table": table, "id": tweet_id, "label": i % 2},
                                 headers={"X-CSRF-Token": csrf}, timeout=60)
            response.raise_for_status()
            if i >= 0:
                labelled.append((tweet_id, response.json()["history_id"]))

        def undo(i: int) -> None:
            if i < 0:
                return
            tweet_id, history_id = labelled[i]
            http.post(base + "api/undo", json={"table": table, "id": tweet_id, "history_id": history_id},
                      headers={"X-CSRF-Token": csrf}, timeout=60).raise_for_status()

        run("POST api/label", label)
        run("POST api/undo", undo)
        run("page /stats (progress, kappa)", get("stats"), repeat=max(5, args.repeat // 5))

        start = time.monotonic()
        score_all(url, table, args.seed)
        print(f"wrote a model score for every row in {time.monotonic() - start:.1f} s", flush=True)
        reads("scored: ")

        start = time.monotonic()
        exported = http.get(base + "api/export", params={"table": table, "format": "csv"}, timeout=600)
        exported.raise_for_status()
        export_seconds = time.monotonic() - start
        print(f"export CSV of {exported.text.count(chr(10)) - 1} labels: {export_seconds:.2f} s", flush=True)

        server.shutdown()
        engine.dispose()
        page_p95 = results["page /tag (queue, least_confidence)"]["p95_ms"]
        figures = {"benchmark": "tagger", "rows": args.rows, "repeat": args.repeat, "table": table,
                   "first_open_seconds": round(first_open, 2), "tag_page_p95_ms": page_p95,
                   "export_csv_seconds": round(export_seconds, 2),
                   "calls_with_seq_scans": sorted(k for k, v in results.items() if v["seq_scans"]),
                   "calls": results}
        print(json.dumps(figures), flush=True)
    finally:
        if postgres is not None:
            postgres.stop()
        state.cleanup()


if __name__ == "__main__":
    sys.exit(main())

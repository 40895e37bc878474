"""Benchmark: how right the weak labels and the served classifier are on the labelled dev files.

Trains as ``make demo`` does, on a private stack: a Kafka broker and PostgreSQL on free ports in a
temporary state folder, then the same ``ssp`` commands as the demo, each a subprocess with the
default gin file (``produce --source synthetic --rate 0 --max-records N``, ``ingest --until-idle``,
``dataset prepare``, ``label``, ``train``), and ``ssp serve`` on a free port. Then, with
``ssp evaluate``'s own functions (:mod:`ssp.evaluation`), it scores on each dev file

* the weak labels (labelling functions + a label model fitted on ``--background`` synthetic tweets
  plus the file, as ``ssp evaluate --labels`` does; a post without a vote is called not AI);
* the served model (the threshold of its model card, else 0.5, as ``ssp classify`` uses),

and prints a table per file. The files: ``labelled/written_dev.tsv`` (431 written posts with kinds)
and the 200 real tweets (``labelled/sample_200_gold.tsv`` joined with ``tweets_v1/sample_200.jsonl``),
from ``$SSP_FIXTURES_DIR`` or ``../shared/fixtures``. The last line is one JSON object::

    weak_f1          weak labels, F1 of the AI class on written_dev
    weak_trap_rate   weak labels, share of written_dev's traps called AI
    model_f1         served model, F1 of the AI class on written_dev
    model_fpr_real   served model, share of the real tweets labelled 0 called AI
    model_trap_rate  served model, share of written_dev's traps called AI

plus extra keys. Services are stopped and the state folder removed at the end (``--keep-state``
keeps it, with the logs and the model).

    .venv/bin/python bench/quality.py --tweets 20000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "naive_text_clf"


def fixtures_dir() -> Path:
    return Path(os.environ.get("SSP_FIXTURES_DIR") or REPO.parent / "shared" / "fixtures")


def run_step(argv: list[str], log: Path) -> str:
    """Run ``ssp <argv>`` to the end; return its last stdout line (the command's summary)."""
    start = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as err:
        done = subprocess.run([sys.executable, "-m", "ssp.cli", *argv], stdout=subprocess.PIPE, stderr=err,
                              stdin=subprocess.DEVNULL, check=False)
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"ssp {' '.join(argv)} failed with exit code {done.returncode}; the end of {log}:\n{tail}")
    summary = lines[-1] if lines else ""
    print(f"  ssp {' '.join(argv)} ({time.monotonic() - start:.0f} s): {summary}", flush=True)
    return summary


def start_stack(state: Path):
    """Kafka and PostgreSQL on free ports in ``state``; the environment points every ``ssp`` command at them."""
    from ssp.config import InfraConfig
    from ssp.infra.kafka_server import KafkaServer
    from ssp.infra.postgres_server import PostgresServer
    from ssp.infra.process import free_port

    config = InfraConfig(kafka_port=free_port(), kafka_controller_port=free_port(), postgres_port=free_port())
    kafka, postgres = KafkaServer(config, state), PostgresServer(config, state)
    kafka.start()
    try:
        postgres.start()
    except BaseException:
        kafka.stop()
        raise
    os.environ.update({"SSP_KAFKA_BOOTSTRAP": kafka.bootstrap, "SSP_DATABASE_URL": postgres.database_url,
                       "SSP_STATE_DIR": str(state)})
    return kafka, postgres


def train_as_the_demo_does(tweets: int, logs: Path) -> None:
    run_step(["produce", "--source", "synthetic", "--rate", "0", "--max-records", str(tweets)], logs / "produce.log")
    run_step(["ingest", "--until-idle", "10"], logs / "ingest.log")
    run_step(["dataset", "prepare"], logs / "prepare.log")
    run_step(["label"], logs / "label.log")
    run_step(["train"], logs / "train.log")


def dev_files():
    """(name, GoldSet) for each dev file."""
    from ssp.evaluation.gold import read_gold

    root = fixtures_dir()
    written = root / "labelled" / "written_dev.tsv"
    real, payloads = root / "labelled" / "sample_200_gold.tsv", root / "tweets_v1" / "sample_200.jsonl"
    for path in (written, real, payloads):
        if not path.exists():
            raise SystemExit(f"fixture file {path} is missing (set SSP_FIXTURES_DIR to the fixtures folder)")
    return [("written_dev", read_gold(written)), ("real_200", read_gold(real, payloads))]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(name: str, gold, weak, model) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{name}: {gold.line()}", title_justify="left")
    for column in ("scorer", "kind", "posts", "AI", "called AI", "precision", "recall", "F1", "FPR"):
        table.add_column(column, justify="left" if column in ("scorer", "kind") else "right",
                         no_wrap=column in ("scorer", "kind"))
    for evaluation in (weak, model):
        rows = [("all", evaluation.overall)] + [(k.kind, k.figures) for k in evaluation.per_kind]
        for kind, f in rows:
            has_ai = f.positives > 0
            table.add_row(evaluation.scorer, kind, str(f.n), str(f.positives), str(f.called_ai),
                          _share(f.precision) if has_ai else "-", _share(f.recall) if has_ai else "-",
                          _share(f.f1) if has_ai else "-", _share(f.fpr))
    Console(width=None if sys.stdout.isatty() else 140).print(table)  # a log file keeps the columns
    print(weak.line())
    print(model.line())


def _trap_rate(evaluation) -> float | None:
    trap = evaluation.kind("trap")
    return trap.share_called_ai if trap else None


def evaluate_all(model_url: str, background: int, top: int) -> dict:
    from ssp.config import LabelConfig, ProducerConfig, load_config
    from ssp.evaluation.scoring import model_scores, weak_label_scores
    from ssp.serving.client import PredictClient

    load_config()
    results = {}
    with PredictClient(model_url, MODEL_NAME, timeout=30) as client:
        client.wait_until_available(120)
        for name, gold in dev_files():
            weak = weak_label_scores(gold, background, ProducerConfig().seed, LabelConfig()).evaluate(gold, top)
            model = model_scores(gold, client).evaluate(gold, top)
            print_table(name, gold, weak, model)
            results[name] = (weak, model)
    return results


def figures(results: dict, seconds: float, tweets: int) -> dict:
    weak, model = results["written_dev"]
    weak_real, model_real = results["real_200"]
    return {
        "weak_f1": weak.overall.f1, "weak_trap_rate": _trap_rate(weak),
        "model_f1": model.overall.f1, "model_fpr_real": model_real.overall.fpr,
        "model_trap_rate": _trap_rate(model),
        "weak_precision": weak.overall.precision, "weak_recall": weak.overall.recall,
        "weak_implicit_recall": weak.kind("ai_implicit").recall if weak.kind("ai_implicit") else None,
        "weak_fpr_real": weak_real.overall.fpr,
        "model_precision": model.overall.precision, "model_recall": model.overall.recall,
        "model_implicit_recall": model.kind("ai_implicit").recall if model.kind("ai_implicit") else None,
        "model_ap": model.average_precision, "model_ece": model.ece, "model_threshold": model.threshold,
        "model_version": model.extra.get("model", {}).get("version"), "tweets": tweets,
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tweets", type=int, default=20_000, help="synthetic tweets to train on (default 20000)")
    parser.add_argument("--background", type=int, default=5_000,
                        help="synthetic tweets the weak labels' label model is fitted on with each file (default 5000)")
    parser.add_argument("--top", type=int, default=10, help="worst errors kept per evaluation (default 10)")
    parser.add_argument("--keep-state", action="store_true", help="keep the state folder (logs, tables, model)")
    args = parser.parse_args()
    if args.tweets < 100 or args.background < 0:
        parser.error("need --tweets >= 100 and --background >= 0")

    from ssp.demo import Child, wait_for_http
    from ssp.infra.process import free_port

    start = time.monotonic()
    state = Path(tempfile.mkdtemp(prefix="ssp-bench-quality-"))
    logs = state / "logs" / "bench"
    print(f"state folder {state}", flush=True)
    kafka, postgres = start_stack(state)
    server = None
    try:
        train_as_the_demo_does(args.tweets, logs)
        port = free_port()
        server = Child("model server", [sys.executable, "-m", "ssp.cli", "serve", "--rest-api-port", str(port)],
                       logs / "serve.log")
        server.start()
        model_url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{model_url}/v1/models/{MODEL_NAME}", server, 120)
        results = evaluate_all(model_url, args.background, args.top)
    finally:
        if server is not None:
            server.stop()
        kafka.stop()
        postgres.stop()
        if not args.keep_state:
            shutil.rmtree(state, ignore_errors=True)
    if args.keep_state:
        print(f"kept {state}", flush=True)
    print(json.dumps(figures(results, time.monotonic() - start, args.tweets)))


if __name__ == "__main__":
    main()

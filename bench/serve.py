"""Benchmark: predictions over ssp's REST model server against the same model called in-process.

Builds a realistic text classifier (Keras TextVectorization -> Embedding -> average pooling ->
Dense -> sigmoid, taking raw strings), trains it for one epoch on synthetic tweets, exports
it as ``<tmp>/bench_clf/1`` with the serving contract (``serving_default``: ``text`` ->
``ai_prob``), then times, for batch sizes 1, 32 and 256:

* in-process: the loaded SavedModel's ``serving_default`` called on a batch of Python strings;
* REST: ``PredictClient.predict`` on the same batches against ``ssp serve --server ssp`` started
  as a separate process on this machine (JSON, HTTP keep-alive, one call at a time).

Each case runs ``--seconds`` of each kind after a warm-up, in alternating rounds so that a change
in the machine's load touches both kinds alike; it reports predictions per second and p50/p99 latency
of one call. The last line printed is one JSON object with the figures, including
``rest_over_inprocess_at_256`` (REST throughput / in-process throughput at batch 256; the goal is
at least 0.5).

    .venv/bin/python bench/serve.py --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # serving_models.ModelServerProcess starts the server the tests use

MODEL_NAME = "bench_clf"
BATCH_SIZES = (1, 32, 256)


def synthetic_texts(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Tweet texts as the pipeline sees them (canonical full text) and their AI/not-AI truth."""
    from ssp.sources.synthetic import SyntheticTweets
    from ssp.tweets import parse_tweet

    tweets = list(SyntheticTweets(seed).generate(n))
    return [parse_tweet(t.payload).text for t in tweets], np.array([t.is_ai for t in tweets], dtype=np.float32)


def export_classifier(texts: list[str], labels: np.ndarray, path: Path) -> None:
    """Train the TextVectorization + Embedding + pooling classifier briefly and export it as a SavedModel."""
    import keras
    import tensorflow as tf

    vectorize = keras.layers.TextVectorization(max_tokens=20_000, output_sequence_length=64)
    vectorize.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(512))
    model = keras.Sequential([
        keras.Input(shape=(), dtype="string"),
        vectorize,
        keras.layers.Embedding(20_000, 64, mask_zero=True),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(tf.constant(texts), labels, batch_size=64, epochs=1, verbose=0)

    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"ai_prob": tf.reshape(tf.cast(model(text, training=False), tf.float32), [-1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve,
                         input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    archive.write_out(str(path), verbose=False)


class Timing:
    """Latencies of one kind of call on one batch size, gathered over several rounds."""

    def __init__(self, call: Callable[[list[str]], np.ndarray], texts: Sequence[str], batch_size: int) -> None:
        self.call, self.batch_size = call, batch_size
        self.batches = [list(texts[i:i + batch_size]) for i in range(0, len(texts) - batch_size + 1, batch_size)]
        self.latencies: list[float] = []
        self.elapsed = 0.0
        for batch in self.batches[:3]:  # warm-up
            call(batch)

    def run(self, seconds: float) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            batch = self.batches[len(self.latencies) % len(self.batches)]
            t0 = time.perf_counter()
            self.call(batch)
            self.latencies.append(time.perf_counter() - t0)
        self.elapsed += time.perf_counter() - start

    def figures(self) -> dict[str, float]:
        return {
            "predictions_per_s": round(self.batch_size * len(self.latencies) / self.elapsed, 1),
            "p50_ms": round(float(np.percentile(self.latencies, 50)) * 1000, 3),
            "p99_ms": round(float(np.percentile(self.latencies, 99)) * 1000, 3),
            "calls": len(self.latencies),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per case and kind (default 6)")
    parser.add_argument("--rounds", type=int, default=6, help="alternating rounds each case is split into")
    parser.add_argument("--texts", type=int, default=20_000, help="synthetic tweets to train and predict on")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    from serving_models import ModelServerProcess
    from ssp.serving.client import PredictClient

    texts, labels = synthetic_texts(args.texts, args.seed)
    with tempfile.TemporaryDirectory(prefix="ssp-bench-serve-") as tmp:
        work = Path(tmp)
        version_path = work / MODEL_NAME / "1"
        t0 = time.perf_counter()
        export_classifier(texts, labels, version_path)
        print(f"trained and exported {version_path} in {time.perf_counter() - t0:.1f} s on {len(texts)} tweets")
        signature = tf.saved_model.load(str(version_path)).signatures["serving_default"]

        def in_process(batch: list[str]) -> np.ndarray:
            return signature(text=tf.constant(batch))["ai_prob"].numpy()

        figures: dict[str, dict[str, dict[str, float]]] = {"inprocess": {}, "rest": {}}
        server = ModelServerProcess(work / MODEL_NAME, work / "logs", model_name=MODEL_NAME)
        try:
            for size in BATCH_SIZES:
                with PredictClient(server.url, MODEL_NAME, batch_size=size, timeout=30) as client:
                    client.wait_until_available(60)
                    sample = texts[:size]
                    if not np.allclose(client.predict(sample), in_process(sample), atol=1e-6):
                        raise SystemExit("REST and in-process predictions differ: the bench would compare "
                                         "different work")
                    # Alternate short rounds of each, so a change in the machine's load hits both alike.
                    local, rest = Timing(in_process, texts, size), Timing(client.predict, texts, size)
                    for _ in range(args.rounds):
                        local.run(args.seconds / args.rounds)
                        rest.run(args.seconds / args.rounds)
                figures["inprocess"][str(size)], figures["rest"][str(size)] = local.figures(), rest.figures()
                print(f"batch {size:>3}  in-process {figures['inprocess'][str(size)]}")
                print(f"batch {size:>3}  REST       {figures['rest'][str(size)]}")
        finally:
            server.stop()

    ratio = figures["rest"]["256"]["predictions_per_s"] / figures["inprocess"]["256"]["predictions_per_s"]
    print(json.dumps({
        "benchmark": "serve", "model": "TextVectorization+Embedding+GlobalAveragePooling1D+Dense",
        "texts": len(texts), "cpus": os.cpu_count(), "seconds_per_case": args.seconds, "rounds": args.rounds,
        "inprocess": figures["inprocess"], "rest": figures["rest"],
        "rest_over_inprocess_at_256": round(ratio, 3),
    }))


if __name__ == "__main__":
    main()

"""Small SavedModels with known outputs, and a real model server process over them, for the serving tests.

Version ``N`` of the toy model has three signatures, so every expected prediction is exact:

* ``serving_default``: ``text`` (string ``[-1]``) -> ``length`` (float32 ``[-1]``) = N x byte length;
* ``two_io``: ``x`` (float32 ``[-1]``) and ``tag`` (string ``[-1]``) -> ``scaled`` = N x x,
  ``echo`` = tag + "!", ``tag_bytes`` = tag (a ``_bytes`` output, so answered base64-encoded);
* ``matrix``: ``m`` (float32 ``[-1, 2]``) -> ``row_sum`` (float32 ``[-1]``) = N x (m0 + m1).

Run as a script to export versions 1 and 2 and a TF Serving model config beside them, to run
the conformance suite against a real ``tensorflow_model_server`` (see
tests/test_serving_conformance.py)::

    .venv/bin/python tests/serving_models.py /tmp/ssp-toy
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests

TOY_MODEL = "toy"
TOY_LABELS = {"stable": 1, "canary": 2}
SERVER_START_SECONDS = 90


def export_toy_model(base_path: Path, version: int) -> Path:
    """Write version ``version`` of the toy model to ``<base_path>/<version>/`` and return that folder."""
    import tensorflow as tf

    class Toy(tf.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = tf.Variable(scale, dtype=tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def lengths(self, text):
            return {"length": tf.cast(tf.strings.length(text), tf.float32) * self.scale}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.string)])
        def two_io(self, x, tag):
            return {"scaled": x * self.scale, "echo": tf.strings.join([tag, "!"]), "tag_bytes": tag}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32)])
        def matrix(self, m):
            return {"row_sum": tf.reduce_sum(m, axis=1) * self.scale}

    model = Toy(float(version))
    path = Path(base_path) / str(version)
    tf.saved_model.save(model, str(path),
                        signatures={"serving_default": model.lengths, "two_io": model.two_io, "matrix": model.matrix})
    (path / "model_card.json").write_text(json.dumps({"model_name": TOY_MODEL, "version": version,
                                                      "note": "serving test model: length x version"}))
    return path


def write_tf_serving_config(folder: Path, base_path: Path, labels: Mapping[str, int] = TOY_LABELS) -> Path:
    """A ``--model_config_file`` serving every version of the toy model with the test's version labels."""
    entries = "".join(f"    version_labels {{ key: '{k}' value: {v} }}\n" for k, v in labels.items())
    config = (f"model_config_list {{\n  config {{\n    name: '{TOY_MODEL}'\n    base_path: '{Path(base_path).resolve()}'\n"
              "    model_platform: 'tensorflow'\n    model_version_policy { all {} }\n" + entries + "  }\n}\n")
    path = Path(folder) / "models.config"
    path.write_text(config)
    return path


class ModelServerProcess:
    """``python -m ssp.serving.cli --server ssp ...`` on a free port, its output in log files."""

    def __init__(self, base_path: Path, log_dir: Path, model_name: str = TOY_MODEL,
                 labels: Mapping[str, int] | None = None, poll_wait_seconds: float = 1.0,
                 extra_args: Sequence[str] = ()) -> None:
        from ssp.infra.process import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model_name = model_name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = log_dir / "server.out", log_dir / "server.err"
        command = [sys.executable, "-m", "ssp.serving.cli", "--server", "ssp", "--model-name", model_name,
                   "--model-base-path", str(base_path), "--rest-api-port", str(self.port),
                   "--poll-wait-seconds", str(poll_wait_seconds), *extra_args]
        for label, version in (labels or {}).items():
            command += ["--version-label", f"{label}={version}"]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(command, stdout=out, stderr=err,
                                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"model server exited with {self.process.returncode}:\n{self.log()}")
            try:
                requests.get(f"{self.url}/v1/models/{self.model_name}", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"model server did not listen within {SERVER_START_SECONDS} s:\n{self.log()}")

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "ssp-toy-models").resolve()
    base = out / TOY_MODEL
    for number in (1, 2):
        export_toy_model(base, number)
    config_file = write_tf_serving_config(out, base)
    print(f"exported {TOY_MODEL} versions 1 and 2 under {base}; serve them with\n"
          f"  tensorflow_model_server --rest_api_port=8501 --model_config_file={config_file}\n"
          "then run\n"
          "  SSP_TEST_TF_SERVING_URL=http://127.0.0.1:8501 .venv/bin/python -m pytest tests/test_serving_conformance.py")

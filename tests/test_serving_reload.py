"""The model server's life: versions appearing, switching under load, broken folders, shutdown; the CLI.

The server is the real one (``python -m ssp.serving.cli --server ssp``) polling a real folder of
SavedModels (tests/serving_models.py: version N answers N x byte length, so every prediction
says which version computed it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from helpers import wait_for
from serving_models import TOY_MODEL, ModelServerProcess, export_toy_model
from ssp.serving.cli import serve
from ssp.serving.client import PredictClient

POLL_SECONDS = 0.2


def states(url: str) -> dict[str, tuple[str, str]]:
    answer = requests.get(f"{url}/v1/models/{TOY_MODEL}", timeout=10)
    if answer.status_code == 404:
        return {}
    return {s["version"]: (s["state"], s["status"]["error_code"]) for s in answer.json()["model_version_status"]}


def test_versions_appear_switch_under_load_survive_broken_folders_and_shut_down(tmp_path):
    base = tmp_path / "toy"  # does not exist yet: the server waits for it
    server = ModelServerProcess(base, tmp_path / "logs", poll_wait_seconds=POLL_SECONDS)
    try:
        missing = requests.get(f"{server.url}/v1/models/{TOY_MODEL}", timeout=10)
        assert missing.status_code == 404
        assert missing.json() == {"error": f"Could not find any versions of model {TOY_MODEL}"}

        (base / ".tmp-export-in-progress").mkdir(parents=True)  # an exporter's temp folder: never a version
        (base / "latest").mkdir()
        export_toy_model(base, 1)
        client = PredictClient(server.url, TOY_MODEL, retries=0, timeout=30)
        assert client.wait_until_available(30) == 1

        # two callers predicting in a loop while version 2 is exported next to version 1
        seen: list[list[tuple[int, list[float]]]] = [[], []]
        failures: list[BaseException] = []
        stop = threading.Event()

        def keep_predicting(log: list) -> None:
            with PredictClient(server.url, TOY_MODEL, retries=0, timeout=30) as caller:
                while not stop.is_set() and len(log) < 5000:
                    try:
                        probs, version = caller.predict_with_version(["abc", "de"])
                        log.append((version, probs.tolist()))
                    except Exception as err:  # any failure at all fails the test below
                        failures.append(err)
                        return

        callers = [threading.Thread(target=keep_predicting, args=(log,)) for log in seen]
        for caller in callers:
            caller.start()
        wait_for(lambda: all(len(log) >= 10 for log in seen) or failures, 30, "predictions from version 1")
        export_toy_model(base, 2)
        wait_for(lambda: any(v == 2 for log in seen for v, _ in log[-3:]) or failures, 30, "the switch to version 2")
        counts = [len(log) for log in seen]
        wait_for(lambda: all(len(log) >= n + 10 for log, n in zip(seen, counts, strict=True)) or failures, 30,
                 "predictions after the switch")
        stop.set()
        for caller in callers:
            caller.join(30)

        assert failures == []
        for log in seen:
            versions = [version for version, _ in log]
            assert versions[0] == 1 and versions[-1] == 2
            switch = versions.index(2)
            assert set(versions[:switch]) == {1} and set(versions[switch:]) == {2}, "went back to version 1"
            for version, probs in log:
                assert probs == [3.0 * version, 2.0 * version]

        assert states(server.url) == {"2": ("AVAILABLE", "OK"), "1": ("END", "OK")}
        old = requests.post(f"{server.url}/v1/models/{TOY_MODEL}/versions/1:predict", json={"instances": ["a"]},
                            timeout=10)
        assert old.status_code == 404 and "Servable not found for request: Specific(toy, 1)" in old.json()["error"]

        # a version still being written (no saved_model.pb yet) is left alone
        (base / "3" / "variables").mkdir(parents=True)
        time.sleep(5 * POLL_SECONDS)
        assert "3" not in states(server.url)
        # a version that cannot load is reported, the previous one keeps serving, and it is retried
        (base / "4").mkdir()
        (base / "4" / "saved_model.pb").write_bytes(b"not a SavedModel")
        wait_for(lambda: states(server.url).get("4") == ("END", "UNKNOWN"), 30, "the failed load of version 4")
        assert client.predict_with_version(["abcd"])[1] == 2
        assert "version 4 of model toy" in server.log() and "failed to load" in server.log()
        (base / "4" / "saved_model.pb").unlink()
        export_toy_model(base, 4)
        wait_for(lambda: states(server.url).get("4") == ("AVAILABLE", "OK"), 30, "version 4 loading on a retry")
        probs, version = client.predict_with_version(["abcd"])
        assert (probs.tolist(), version) == ([16.0], 4)
        client.close()
    finally:
        code = server.stop()
    assert code == 0, server.log()
    summary = server.stdout_path.read_text().strip().splitlines()[-1]
    assert summary.startswith(f"served model {TOY_MODEL} for "), summary
    assert int(re.search(r"\((\d+) predictions", summary).group(1)) >= 40, summary
    assert summary.endswith("versions loaded: 1, 2, 4"), summary


# ---------------------------------------------------------------- the command


def test_serve_has_help():
    result = CliRunner().invoke(serve, ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and "--version-label" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--version-label", "stable"], "must look like LABEL=VERSION"),
    (["--version-label", "a=1", "--version-label", "a=2"], "given twice"),
    (["--poll-wait-seconds", "0"], "must be above 0"),
    (["--model-name", "a/b"], "without '/' or ':'"),
])
def test_serve_refuses_bad_options_by_name(args, message, tmp_path):
    result = CliRunner().invoke(serve, ["--model-base-path", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output, result.output


def _serve_cli(*args: str, path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ssp.serving.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PATH": path, "TF_CPP_MIN_LOG_LEVEL": "2"})


def _fake_tf_serving(folder: Path) -> Path:
    """A stand-in ``tensorflow_model_server`` that writes the arguments it got, one a line."""
    folder.mkdir()
    record = folder / "argv.txt"
    binary = folder / "tensorflow_model_server"
    binary.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    binary.chmod(0o755)
    return record


def test_serve_runs_tensorflow_model_server_when_on_the_path(tmp_path):
    record = _fake_tf_serving(tmp_path / "bin")
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    base = tmp_path / "models" / "clf"
    result = _serve_cli("--model-name", "clf", "--model-base-path", str(base), "--rest-api-port", "9123",
                        "--poll-wait-seconds", "2", path=path)
    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines() == [
        "--port=8500", "--rest_api_port=9123", "--file_system_poll_wait_seconds=2",
        "--model_name=clf", f"--model_base_path={base.resolve()}"]

    result = _serve_cli("--model-name", "clf", "--model-base-path", str(base), "--version-label", "stable=3",
                        path=path)
    assert result.returncode == 0, result.stderr
    argv = record.read_text().splitlines()
    assert argv[:3] == ["--port=8500", "--rest_api_port=8501", "--file_system_poll_wait_seconds=1"]
    assert len(argv) == 4 and argv[3].startswith("--model_config_file=")
    config = Path(argv[3].split("=", 1)[1]).read_text()
    assert "name: 'clf'" in config and f"base_path: '{base.resolve()}'" in config
    assert "version_labels { key: 'stable' value: 3 }" in config and "all {}" in config


def test_serve_tensorflow_without_the_binary_says_so(tmp_path):
    result = _serve_cli("--server", "tensorflow", "--model-base-path", str(tmp_path), path="/usr/bin:/bin")
    assert result.returncode == 1 and "tensorflow_model_server is not on the PATH" in result.stderr


def test_serve_on_a_busy_port_says_which(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _serve_cli("--server", "ssp", "--model-base-path", str(tmp_path), "--rest-api-port", str(port),
                            path=os.environ["PATH"])
    assert result.returncode == 1
    assert f"port 127.0.0.1:{port} is already in use" in result.stderr

"""TensorFlow Serving's REST API, request by request, against ssp's model server (or a real one).

Every expected answer here comes from TF Serving's REST API documentation (api_rest.md: status,
metadata, predict in row and columnar format, ``b64`` values, ``NaN``/``Infinity``, errors as
``{"error": ...}``) and, where the doc is silent, from TF Serving's behaviour (404 for unknown
models and versions, 400 for bad requests and unknown version labels). The model is the toy
model of tests/serving_models.py, whose outputs are exact.

By default the suite starts ssp's server (``python -m ssp.serving.cli --server ssp``). To run
it against a real ``tensorflow_model_server`` instead::

    .venv/bin/python tests/serving_models.py /tmp/ssp-toy      # exports toy/1, toy/2 + models.config
    tensorflow_model_server --rest_api_port=8501 --model_config_file=/tmp/ssp-toy/models.config &
    SSP_TEST_TF_SERVING_URL=http://127.0.0.1:8501 .venv/bin/python -m pytest tests/test_serving_conformance.py

Tests of what only ssp's server has (its request size limit) are skipped then.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from serving_models import TOY_LABELS, TOY_MODEL, ModelServerProcess, export_toy_model
from ssp.serving.client import ModelServerError, PredictClient

EXTERNAL_URL = os.environ.get("SSP_TEST_TF_SERVING_URL", "").rstrip("/")
MAX_REQUEST_BYTES = 64 * 1024
ssp_only = pytest.mark.skipif(bool(EXTERNAL_URL), reason="checks a limit of ssp's own server")


def b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    if EXTERNAL_URL:
        yield EXTERNAL_URL
        return
    root = tmp_path_factory.mktemp("conformance")
    for version in (1, 2):
        export_toy_model(root / TOY_MODEL, version)
    server = ModelServerProcess(root / TOY_MODEL, root / "logs", labels=TOY_LABELS,
                                extra_args=["--max-request-bytes", str(MAX_REQUEST_BYTES)])
    try:
        PredictClient(server.url, TOY_MODEL).wait_until_available(60)
        yield server.url
    finally:
        assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def api(server_url):
    session = requests.Session()

    def call(method: str, path: str, body=None, data: bytes | None = None):
        if body is not None:
            data = json.dumps(body).encode()
        response = session.request(method, server_url + path, data=data, timeout=30)
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        return response.status_code, json.loads(response.content)

    yield call
    session.close()


def status_entry(version: int, state: str = "AVAILABLE") -> dict:
    return {"version": str(version), "state": state, "status": {"error_code": "OK", "error_message": ""}}


def assert_error(answer, status: int, *fragments: str) -> None:
    code, body = answer
    assert code == status, body
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    for fragment in fragments:
        assert fragment in body["error"], body


# ---------------------------------------------------------------- model status API


def test_status_lists_every_served_version(api):
    code, body = api("GET", f"/v1/models/{TOY_MODEL}")
    assert code == 200
    assert set(body) == {"model_version_status"}
    assert sorted(body["model_version_status"], key=lambda s: s["version"]) == [status_entry(1), status_entry(2)]


def test_status_of_one_version(api):
    assert api("GET", f"/v1/models/{TOY_MODEL}/versions/1") == (200, {"model_version_status": [status_entry(1)]})
    assert api("GET", f"/v1/models/{TOY_MODEL}/versions/2") == (200, {"model_version_status": [status_entry(2)]})


def test_status_by_label_names_the_labelled_version(api):
    code, body = api("GET", f"/v1/models/{TOY_MODEL}/labels/stable")
    assert code == 200
    assert status_entry(1) in body["model_version_status"]


def test_status_of_unknown_model_or_version_is_404(api):
    assert_error(api("GET", "/v1/models/no_such_model"), 404, "Could not find any versions of model no_such_model")
    assert_error(api("GET", f"/v1/models/{TOY_MODEL}/versions/99"), 404, f"Could not find version 99 of model {TOY_MODEL}")


# ---------------------------------------------------------------- model metadata API

STRING_VECTOR = {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}}
FLOAT_VECTOR = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}}
FLOAT_PAIRS = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "2", "name": ""}],
                                                     "unknown_rank": False}}


def tensor_info(info: dict) -> dict:
    """A TensorInfo without its graph tensor name (TF's business), which must still be a non-empty string."""
    assert isinstance(info.pop("name"), str)
    return info


def test_metadata_of_the_latest_version(api):
    code, body = api("GET", f"/v1/models/{TOY_MODEL}/metadata")
    assert code == 200
    assert body["model_spec"] == {"name": TOY_MODEL, "signature_name": "", "version": "2"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "two_io", "matrix"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert {k: tensor_info(v) for k, v in default["inputs"].items()} == {"text": STRING_VECTOR}
    assert {k: tensor_info(v) for k, v in default["outputs"].items()} == {"length": FLOAT_VECTOR}
    two_io = signatures["two_io"]
    assert {k: tensor_info(v) for k, v in two_io["inputs"].items()} == {"x": FLOAT_VECTOR, "tag": STRING_VECTOR}
    assert {k: tensor_info(v) for k, v in two_io["outputs"].items()} == {
        "scaled": FLOAT_VECTOR, "echo": STRING_VECTOR, "tag_bytes": STRING_VECTOR}
    assert {k: tensor_info(v) for k, v in signatures["matrix"]["inputs"].items()} == {"m": FLOAT_PAIRS}


def test_metadata_of_a_version_and_a_label(api):
    for path in (f"/v1/models/{TOY_MODEL}/versions/1/metadata", f"/v1/models/{TOY_MODEL}/labels/stable/metadata"):
        code, body = api("GET", path)
        assert code == 200, body
        assert body["model_spec"] == {"name": TOY_MODEL, "signature_name": "", "version": "1"}


def test_metadata_of_unknown_model_is_404(api):
    assert_error(api("GET", "/v1/models/no_such_model/metadata"), 404, "Servable not found for request: Latest(no_such_model)")


# ---------------------------------------------------------------- predict API: row format


def test_row_format_single_input_answers_a_plain_list(api):
    path = f"/v1/models/{TOY_MODEL}:predict"
    assert api("POST", path, {"instances": ["ab", "héllo", ""]}) == (200, {"predictions": [4.0, 12.0, 0.0]})


def test_row_format_with_named_single_input(api):
    body = {"instances": [{"text": "abc"}, {"text": "z"}]}
    assert api("POST", f"/v1/models/{TOY_MODEL}:predict", body) == (200, {"predictions": [6.0, 2.0]})


def test_version_and_label_choose_the_model(api):
    body = {"instances": ["ab", "héllo"]}
    assert api("POST", f"/v1/models/{TOY_MODEL}/versions/1:predict", body) == (200, {"predictions": [2.0, 6.0]})
    assert api("POST", f"/v1/models/{TOY_MODEL}/versions/2:predict", body) == (200, {"predictions": [4.0, 12.0]})
    assert api("POST", f"/v1/models/{TOY_MODEL}/labels/stable:predict", body) == (200, {"predictions": [2.0, 6.0]})
    assert api("POST", f"/v1/models/{TOY_MODEL}/labels/canary:predict", body) == (200, {"predictions": [4.0, 12.0]})


def test_explicit_default_signature_name(api):
    body = {"signature_name": "serving_default", "instances": ["abcd"]}
    assert api("POST", f"/v1/models/{TOY_MODEL}:predict", body) == (200, {"predictions": [8.0]})


def test_b64_values_are_decoded_to_bytes(api):
    # 4 bytes that are not UTF-8 text: only the {"b64": ...} form can carry them
    body = {"instances": [b64(b"\x00\xffab"), "ab"]}
    assert api("POST", f"/v1/models/{TOY_MODEL}:predict", body) == (200, {"predictions": [8.0, 4.0]})


def test_row_format_several_outputs_answer_a_list_of_objects(api):
    body = {"signature_name": "two_io", "instances": [{"x": 1.5, "tag": "a"}, {"x": -2, "tag": b64(b"b")}]}
    assert api("POST", f"/v1/models/{TOY_MODEL}:predict", body) == (200, {"predictions": [
        {"scaled": 3.0, "echo": "a!", "tag_bytes": {"b64": base64.b64encode(b"a").decode()}},
        {"scaled": -4.0, "echo": "b!", "tag_bytes": {"b64": base64.b64encode(b"b").decode()}},
    ]})


def test_row_format_nested_lists(api):
    body = {"signature_name": "matrix", "instances": [[1, 2], [3, 4.5]]}
    assert api("POST", f"/v1/models/{TOY_MODEL}:predict", body) == (200, {"predictions": [6.0, 15.0]})


def test_float32_outputs_keep_their_shortest_decimal_form(api):
    body = {"signature_name": "two_io", "inputs": {"x": [0.05, 0.1], "tag": ["a", "b"]}}
    code, answer = api("POST", f"/v1/models/{TOY_MODEL}/versions/1:predict", body)
    assert code == 200
    assert answer["outputs"]["scaled"] == [0.05, 0.1]


# ---------------------------------------------------------------- predict API: columnar format


def test_columnar_single_input_answers_the_value(api):
    path = f"/v1/models/{TOY_MODEL}:predict"
    assert api("POST", path, {"inputs": ["ab", "c"]}) == (200, {"outputs": [4.0, 2.0]})
    assert api("POST", path, {"inputs": {"text": ["abc"]}}) == (200, {"outputs": [6.0]})


def test_columnar_several_outputs_answer_an_object(api):
    body = {"signature_name": "two_io", "inputs": {"x": [1, 2, 3], "tag": ["p", "q", "r"]}}
    code, answer = api("POST", f"/v1/models/{TOY_MODEL}/versions/1:predict", body)
    assert code == 200
    assert answer == {"outputs": {
        "scaled": [1.0, 2.0, 3.0], "echo": ["p!", "q!", "r!"],
        "tag_bytes": [{"b64": base64.b64encode(t).decode()} for t in (b"p", b"q", b"r")],
    }}


def test_nan_and_infinity_tokens_pass_both_ways(server_url):
    body = '{"signature_name": "two_io", "inputs": {"x": [NaN, Infinity, -Infinity], "tag": ["a", "b", "c"]}}'
    response = requests.post(f"{server_url}/v1/models/{TOY_MODEL}/versions/1:predict", data=body, timeout=30)
    assert response.status_code == 200, response.text
    scaled = json.loads(response.content)["outputs"]["scaled"]
    assert math.isnan(scaled[0]) and scaled[1:] == [math.inf, -math.inf]


# ---------------------------------------------------------------- errors


def test_unknown_model_is_404_in_tf_servings_words(api):
    assert_error(api("POST", "/v1/models/half:predict", {"instances": [1.0, 5.0]}), 404,
                 "Servable not found for request: Latest(half)")


def test_unknown_version_is_404(api):
    assert_error(api("POST", f"/v1/models/{TOY_MODEL}/versions/99:predict", {"instances": ["a"]}), 404,
                 "Servable not found for request")


def test_unknown_label_is_refused(api):
    assert_error(api("POST", f"/v1/models/{TOY_MODEL}/labels/nope:predict", {"instances": ["a"]}), 400,
                 "Unrecognized servable version label: nope")


@pytest.mark.parametrize(("name", "data", "fragment"), [
    ("empty body", b"", "JSON Parse error"),
    ("not JSON", b"instances = [1, 2]", "JSON Parse error"),
    ("signature name not a string", b'{"signature_name": 100, "instances": ["a"]}', "'signature_name'"),
    ("unknown signature", b'{"signature_name": "nope", "instances": ["a"]}', "nope"),
    ("both formats", b'{"instances": ["a"], "inputs": ["a"]}', ""),
    ("no inputs at all", b'{"signature_name": "serving_default"}', ""),
    ("strings for floats", b'{"signature_name": "matrix", "instances": [["x", "y"]]}', ""),
    ("wrong inner shape", b'{"signature_name": "matrix", "instances": [[1, 2, 3]]}', ""),
    ("ragged rows", b'{"signature_name": "matrix", "inputs": [[1, 2], [3]]}', ""),
    ("missing named input", b'{"signature_name": "two_io", "instances": [{"x": 1.0}]}', ""),
    ("columnar missing input", b'{"signature_name": "two_io", "inputs": {"x": [1.0]}}', ""),
    ("number for a string", b'{"instances": [5]}', ""),
    ("bad base64", b'{"instances": [{"b64": "###"}]}', ""),
    ("too large for float32", b'{"signature_name": "matrix", "instances": [[1e300, 1]]}', ""),
])
def test_bad_predict_requests_are_400(api, name, data, fragment):
    assert_error(api("POST", f"/v1/models/{TOY_MODEL}:predict", data=data), 400, fragment)


def test_malformed_paths_are_400(api):
    assert_error(api("GET", f"/v1/models/{TOY_MODEL}:predict"), 400, "Malformed request")
    assert_error(api("POST", f"/v1/models/{TOY_MODEL}", {"instances": ["a"]}), 400, "Malformed request")
    assert_error(api("GET", "/v1/models"), 400, "Missing model name")
    assert_error(api("POST", f"/v1/models/{TOY_MODEL}/versions/99999999999999999999:predict", {"instances": ["a"]}),
                 400, "Failed to convert version")


@ssp_only
def test_request_over_the_size_limit_is_413(api):
    texts = ["x" * 1000] * (MAX_REQUEST_BYTES // 1000 + 1)
    assert_error(api("POST", f"/v1/models/{TOY_MODEL}:predict", {"instances": texts}), 413,
                 f"limit of {MAX_REQUEST_BYTES} bytes")
    # the server is still there for the next request
    assert api("POST", f"/v1/models/{TOY_MODEL}:predict", {"instances": ["ab"]}) == (200, {"predictions": [4.0]})


@ssp_only
def test_oversized_request_gets_its_413_even_while_still_sending(server_url):
    body = b'{"instances": ["' + b"x" * (8 * MAX_REQUEST_BYTES) + b'"]}'  # far past the socket buffers
    response = requests.post(f"{server_url}/v1/models/{TOY_MODEL}:predict", data=body, timeout=30)
    assert response.status_code == 413 and "limit" in response.json()["error"]


# ---------------------------------------------------------------- the HTTP side


def test_keep_alive_serves_several_requests_on_one_connection(server_url):
    parts = urlsplit(server_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        for text, expected in (("ab", 4.0), ("abcde", 10.0), ("", 0.0)):
            connection.request("POST", f"/v1/models/{TOY_MODEL}:predict", body=json.dumps({"instances": [text]}),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            assert response.status == 200
            assert json.loads(response.read()) == {"predictions": [expected]}
            assert response.getheader("Connection", "").lower() != "close"
    finally:
        connection.close()


def test_concurrent_requests_all_get_their_own_answer(server_url):
    def one(i: int) -> tuple[int, float]:
        text = "y" * (i % 50)
        answer = requests.post(f"{server_url}/v1/models/{TOY_MODEL}:predict", json={"instances": [text]}, timeout=30)
        return i, answer.json()["predictions"][0]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(160)))
    assert results == [(i, 2.0 * (i % 50)) for i in range(160)]


# ---------------------------------------------------------------- the client against the server


def test_client_batches_in_order_and_names_the_version(server_url):
    texts = ["a" * n for n in range(11)]
    with PredictClient(server_url, TOY_MODEL, batch_size=4) as client:
        probs, version = client.predict_with_version(texts)
        assert version == 2
        assert probs.dtype == np.float32
        np.testing.assert_array_equal(probs, np.arange(11, dtype=np.float32) * 2)
        assert client.predict([]).shape == (0,)
        np.testing.assert_array_equal(client.predict(np.array(["ab", "c"])), [4.0, 2.0])  # numpy.str_ texts
        assert client.available_version() == 2
        assert client.metadata()["model_spec"]["version"] == "2"
        assert {s["version"] for s in client.status()["model_version_status"]} == {"1", "2"}
    # requests cut by their texts' length too (0+1+..+4 = 10 characters, then 5+6, ...): the same answers
    with PredictClient(server_url, TOY_MODEL, batch_size=100, max_request_chars=12) as client:
        np.testing.assert_array_equal(client.predict(texts), np.arange(11, dtype=np.float32) * 2)


def test_client_refuses_bad_texts_by_index(server_url):
    with PredictClient(server_url, TOY_MODEL) as client:
        with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
            client.predict(["ok", None])
        with pytest.raises(TypeError, match="not one string"):
            client.predict("one string")


def test_client_does_not_retry_a_4xx_and_names_the_url_and_reason(server_url):
    with PredictClient(server_url, "no_such_model", retries=3, backoff=2.0) as client:
        start = time.monotonic()
        with pytest.raises(ModelServerError) as caught:
            client.predict(["a"])
    assert time.monotonic() - start < 2.0  # no backoff sleep happened
    assert caught.value.status_code == 404
    assert f"{server_url}/v1/models/no_such_model:predict" in str(caught.value)
    assert "Servable not found for request: Latest(no_such_model)" in str(caught.value)


def test_client_retries_connection_errors_with_backoff():
    from ssp.infra.process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with PredictClient(url, TOY_MODEL, retries=2, backoff=0.2) as client:
        start = time.monotonic()
        with pytest.raises(ModelServerError, match="after 3 attempts: cannot connect") as caught:
            client.predict(["a"])
    assert time.monotonic() - start >= 0.2 + 0.4
    assert caught.value.url == f"{url}/v1/models/{TOY_MODEL}:predict"


def test_client_times_out_on_a_server_that_never_answers():
    with socket.socket() as silent:  # accepts connections (backlog) but never reads nor answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with PredictClient(url, TOY_MODEL, timeout=0.3, retries=1, backoff=0.05) as client:
            start = time.monotonic()
            with pytest.raises(ModelServerError, match=r"after 2 attempts: no answer within 0.3 s"):
                client.status()
        assert time.monotonic() - start < 5


class _FlakyProxy(ThreadingHTTPServer):
    """A proxy in front of the real server that answers 503 to the first ``failures`` requests, as a
    load balancer does while its backend restarts."""

    daemon_threads = True

    def __init__(self, target: str, failures: int) -> None:
        self.target, self.failures, self.seen = target, failures, 0
        super().__init__(("127.0.0.1", 0), _FlakyHandler)


class _FlakyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FlakyProxy

    def log_message(self, fmt, *args):
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen += 1
        if self.server.seen <= self.server.failures:
            status, data = 503, b'{"error": "backend restarting"}'
        else:
            answer = requests.request(self.command, self.server.target + self.path, data=body or None, timeout=30)
            status, data = answer.status_code, answer.content
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


def test_client_retries_5xx_until_the_server_answers(server_url):
    proxy = _FlakyProxy(server_url, failures=2)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
        with PredictClient(proxy_url, TOY_MODEL, retries=3, backoff=0.05) as client:
            np.testing.assert_array_equal(client.predict(["abc"]), [6.0])
        assert proxy.seen == 3
        proxy.seen = 0
        with PredictClient(proxy_url, TOY_MODEL, retries=1, backoff=0.05) as client:
            with pytest.raises(ModelServerError, match="after 2 attempts: HTTP 503: backend restarting") as caught:
                client.predict(["abc"])
        assert caught.value.status_code == 503
    finally:
        proxy.shutdown()
        proxy.server_close()

"""What ssp's model server refuses, found by probing the running demo from 127.0.0.1 (issue 10).

Each test sends real HTTP requests to a real ``ssp serve --server ssp`` process over the toy
model of tests/serving_models.py:

* JSON nested past the server's bound (64) and strings holding lone UTF-16 surrogates get a
  400 naming the problem, not a 500 from deep inside the parser;
* a POST whose body a browser could send cross-origin without a preflight (``text/plain``,
  forms), a ``Host`` other than the names of the bound address (DNS rebinding) and an
  ``Origin`` of another site are refused;
* a request above ``--max-batch-size`` instances gets a 400 naming the limit;
* every answer carries ``Content-Type: application/json`` and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import http.client
import json

import pytest

from serving_models import TOY_MODEL, ModelServerProcess, export_toy_model
from ssp.config import ServeConfig
from ssp.serving.client import PredictClient

PREDICT = f"/v1/models/{TOY_MODEL}:predict"
ALLOWED_NAME = "model.internal"
SMALL_BATCH_LIMIT = 16


@pytest.fixture(scope="module")
def model_base(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    export_toy_model(root / TOY_MODEL, 1)
    return root


def _start(model_base, name: str, extra_args=()):
    server = ModelServerProcess(model_base / TOY_MODEL, model_base / name, extra_args=extra_args)
    PredictClient(server.url, TOY_MODEL).wait_until_available(60)
    return server


@pytest.fixture(scope="module")
def server(model_base):
    """The server as `ssp serve` starts it by default (ServeConfig from config/default_ssp_config.gin)."""
    process = _start(model_base, "default-logs")
    yield process
    assert process.stop() == 0, process.log()


@pytest.fixture(scope="module")
def configured_server(model_base):
    process = _start(model_base, "configured-logs", ["--allowed-host", ALLOWED_NAME,
                                                     "--max-batch-size", str(SMALL_BATCH_LIMIT)])
    yield process
    assert process.stop() == 0, process.log()


def send(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One request on its own connection, headers exactly as given (Host defaults to 127.0.0.1:<port>)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        given = {"Content-Type": "application/json", **(headers or {})}
        connection.putrequest(method, path, skip_host="Host" in given, skip_accept_encoding=True)
        for key, value in given.items():
            if value is not None:
                connection.putheader(key, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        return response.status, json.loads(data), response.headers
    finally:
        connection.close()


def assert_error(answer, status: int, *fragments: str) -> dict:
    code, body, headers = answer
    assert code == status, body
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    for fragment in fragments:
        assert fragment in body["error"], body
    return headers


def assert_predicts(answer, predictions) -> None:
    code, body, _ = answer
    assert code == 200, body
    assert body == {"predictions": predictions}


# ---------------------------------------------------------------- finding 1: deep nesting


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deeply_nested_json_is_a_400_naming_the_nesting(server, depth):
    # 1000 is within orjson's own limit (so it reached the recursive walk over the values); 100,000 went
    # to the fallback parser, which raised RecursionError. Both were 500s.
    body = b'{"instances": ' + b"[" * depth + b'"a"' + b"]" * depth + b"}"
    assert_error(send(server, "POST", PREDICT, body), 400, "nested", "64")
    objects = b'{"instances": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
    assert_error(send(server, "POST", PREDICT, objects), 400, "nested", "64")
    assert_predicts(send(server, "POST", PREDICT, b'{"instances": ["ab"]}'), [2.0])


def test_nesting_within_the_bound_and_brackets_inside_strings_still_work(server):
    texts = ["[[[[" * 40, "{" * 200, '\\"[[[', "]]]]"]
    body = json.dumps({"instances": texts}).encode()
    assert_predicts(send(server, "POST", PREDICT, body), [float(len(t.encode())) for t in texts])
    # 64 levels of lists reach the shape check, not the nesting bound
    nested = b'{"signature_name": "matrix", "instances": ' + b"[" * 63 + b"1" + b"]" * 63 + b"}"
    code, reply, _ = send(server, "POST", PREDICT, nested)
    assert code == 400 and "nested" not in reply["error"], reply


# ---------------------------------------------------------------- finding 2: lone surrogates


@pytest.mark.parametrize("body", [
    rb'{"instances": ["\ud800"]}',  # the fast path for a batch of texts
    rb'{"instances": [["\udfff"]]}',  # the nested walk
    rb'{"signature_name": "two_io", "instances": [{"x": 1.0, "tag": "ok \udbff!"}]}',
    rb'{"signature_name": "\ud800", "instances": ["a"]}',  # echoed in the error message
    rb'{"instances": ["a"], "\ud800": NaN}',  # a key, on the parser that takes NaN
])
def test_lone_surrogate_is_a_400_naming_it(server, body):
    assert_error(send(server, "POST", PREDICT, body), 400, "surrogate")


def test_escaped_surrogate_pairs_are_text(server):
    assert_predicts(send(server, "POST", PREDICT, rb'{"instances": ["\ud83d\ude00"]}'), [4.0])  # one emoji, 4 bytes


# ---------------------------------------------------------------- finding 3: content type, Host, Origin


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonp"])
def test_post_bodies_a_browser_sends_cross_origin_are_refused(server, content_type):
    answer = send(server, "POST", PREDICT, b'{"instances": ["ab"]}', {"Content-Type": content_type})
    assert_error(answer, 415, "application/json", content_type.split(";")[0])


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON",
                                          None])
def test_json_posts_are_answered(server, content_type):
    # no Content-Type at all is what TF Serving's own examples and plain HTTP libraries send
    answer = send(server, "POST", PREDICT, b'{"instances": ["ab"]}', {"Content-Type": content_type})
    assert_predicts(answer, [2.0])


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", "127.0.0.1:1",
                                  "localhost:1", "", "127.0.0.1:{port}@evil.example"])
def test_foreign_host_header_is_403(server, method, host):
    path, body = (PREDICT, b'{"instances": ["ab"]}') if method == "POST" else (f"/v1/models/{TOY_MODEL}", None)
    answer = send(server, method, path, body, {"Host": host.format(port=server.port)})
    assert_error(answer, 403, "Host")


def test_missing_host_header_is_refused(server):
    assert_error(send(server, "GET", f"/v1/models/{TOY_MODEL}", headers={"Host": None}), 403, "Host")


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "[::1]:{port}"])
def test_loopback_names_with_the_port_are_answered(server, host):
    answer = send(server, "POST", PREDICT, b'{"instances": ["ab"]}', {"Host": host.format(port=server.port)})
    assert_predicts(answer, [2.0])


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_cross_origin_requests_are_403(server, origin):
    answer = send(server, "POST", PREDICT, b'{"instances": ["ab"]}', {"Origin": origin})
    assert_error(answer, 403, "Origin")


def test_same_origin_request_is_answered(server):
    answer = send(server, "POST", PREDICT, b'{"instances": ["ab"]}', {"Origin": f"http://localhost:{server.port}"})
    assert_predicts(answer, [2.0])


def test_allowed_hosts_add_names(configured_server):
    body = b'{"instances": ["ab"]}'
    assert_predicts(send(configured_server, "POST", PREDICT, body, {"Host": ALLOWED_NAME}), [2.0])
    assert_predicts(send(configured_server, "POST", PREDICT, body, {"Host": f"Model.Internal:{configured_server.port}",
                                                                     "Origin": f"https://{ALLOWED_NAME}"}), [2.0])
    assert_predicts(send(configured_server, "POST", PREDICT, body), [2.0])  # the loopback names still work
    assert_error(send(configured_server, "POST", PREDICT, body, {"Host": "evil.example"}), 403, "Host")


def test_wildcard_bind_accepts_any_host_unless_an_allow_list_is_given():
    from ssp.serving.server import HostPolicy

    anywhere = HostPolicy.for_bind("0.0.0.0", 8501, ())
    assert anywhere.allows("evil.example") and anywhere.allows("10.1.2.3:8501")
    listed = HostPolicy.for_bind("0.0.0.0", 8501, ("model.internal",))
    assert listed.allows("model.internal:8501") and listed.allows("localhost:8501")
    assert not listed.allows("evil.example") and not listed.allows("")
    loopback = HostPolicy.for_bind("127.0.0.1", 8501, ())
    assert loopback.allows("127.0.0.1:8501") and not loopback.allows("127.0.0.1:8502")
    assert not loopback.allows("evil.example:8501")
    assert HostPolicy.for_bind("::", 8501, ()).allows("anything")
    assert HostPolicy.for_bind("10.0.0.5", 8501, ()).allows("10.0.0.5:8501")
    assert not HostPolicy.for_bind("10.0.0.5", 8501, ()).allows("evil.example:8501")


# ---------------------------------------------------------------- finding 4: batch size


def test_request_above_the_default_max_batch_size_is_400_naming_it(server):
    limit = ServeConfig().max_batch_size
    assert limit == 10_000
    over = json.dumps({"instances": ["a"] * (limit + 1)}).encode()
    assert_error(send(server, "POST", PREDICT, over), 400, str(limit + 1), str(limit), "--max-batch-size")
    columnar = json.dumps({"inputs": {"text": ["a"] * (limit + 1)}}).encode()
    assert_error(send(server, "POST", PREDICT, columnar), 400, str(limit))
    at_limit = json.dumps({"instances": ["a"] * limit}).encode()
    code, body, _ = send(server, "POST", PREDICT, at_limit)
    assert code == 200 and len(body["predictions"]) == limit


def test_max_batch_size_option_and_a_client_within_it(configured_server):
    over = json.dumps({"signature_name": "matrix", "instances": [[1, 2]] * (SMALL_BATCH_LIMIT + 1)}).encode()
    assert_error(send(configured_server, "POST", PREDICT, over), 400, f"maximum batch size of {SMALL_BATCH_LIMIT}")
    with PredictClient(configured_server.url, TOY_MODEL, batch_size=SMALL_BATCH_LIMIT) as client:
        texts = ["ab"] * (SMALL_BATCH_LIMIT * 3 + 1)
        assert client.predict(texts).tolist() == [2.0] * len(texts)


def test_clients_default_batches_are_within_the_servers_limit(server):
    config = ServeConfig()
    assert config.client_batch_size <= config.max_batch_size
    texts = ["ab"] * (config.max_batch_size + 300)
    with PredictClient(server.url, TOY_MODEL, batch_size=config.client_batch_size, retries=0) as client:
        assert client.predict(texts).shape == (len(texts),)


# ---------------------------------------------------------------- finding 5: headers of every reply


def test_every_reply_is_json_with_nosniff(server):
    html = b'{"signature_name": "<script>alert(1)</script>", "instances": ["a"]}'
    answers = [
        send(server, "GET", f"/v1/models/{TOY_MODEL}"),
        send(server, "POST", PREDICT, b'{"instances": ["ab"]}'),
        send(server, "POST", PREDICT, html),  # an error echoing the input
        send(server, "GET", "/<script>"),
        send(server, "PUT", PREDICT, b"{}"),  # the base class's own refusal
        send(server, "POST", PREDICT, b"x", {"Content-Type": "text/html"}),
        send(server, "GET", f"/v1/models/{TOY_MODEL}", headers={"Host": "evil.example"}),
        send(server, "POST", PREDICT, b"{" * 100),
    ]
    assert answers[2][0] == 400 and "<script>" in answers[2][1]["error"]
    for code, body, headers in answers:
        assert headers["Content-Type"] == "application/json", (code, body)
        assert headers["X-Content-Type-Options"] == "nosniff", (code, body)

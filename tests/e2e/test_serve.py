"""The serve stage over real HTTP: a tiny digits run (trained once) behind real Ray Serve on
a real local Ray, one application for the session. Answers equal the Predictor's offline
answers; bad requests are 4xx naming the row and problem and the server stays up; the Open
Inference Protocol v2 speaks to a real client (tritonclient); overload answers 503 at once;
the metrics endpoint carries raydl's counters; `raydl serve` starts, prints its URL and
stops on Ctrl-C; `--config` writes a file Serve's own schema accepts; a bearer token guards
every route but the probes (and never shows in logs or configs); fuzzing from the app's own
OpenAPI document finds no 5xx; a replica killed under load is replaced, and clients that
retry lose nothing (after the session app's other tests: it kills its replica); and under
HAProxy ingress, the RayService's mode, on a Ray of its own: 503, 504, 400 and the probes."""

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import ray
import schemathesis
import sklearn.datasets
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from ray import serve
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

import raydl
from benchmarks.faults import TINY_DIGITS, kill_replica_under_load
from raydl.serve.app import application
from raydl.serve.protocol import ABSTAIN
from raydl.spec import validate_spec
from raydl.spec.serve import ServeSpec

pytestmark = pytest.mark.e2e

IMAGES = sklearn.datasets.load_digits().images  # (N, 8, 8)
# serve.auth: the token is in Ray's environment from the start, as `raydl serve` has it
TOKEN_ENV, TOKEN = "RAYDL_TEST_SERVE_TOKEN", f"tok-{secrets.token_hex(16)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Ray (metrics exported on a free port) → a tiny digits run → one Serve app."""
    metrics_port, http_port = free_port(), free_port()
    # Ray's processes start with the Serve flags `raydl serve` sets (raydl.serve.config.RAY_ENV)
    from raydl.serve.config import RAY_ENV

    for name, value in RAY_ENV.items():
        os.environ.setdefault(name, value)
    os.environ[TOKEN_ENV] = TOKEN  # Ray's processes inherit it (removed below; they keep it)
    ray.init(
        address="local",
        num_cpus=4,
        object_store_memory=256 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
        _metrics_export_port=metrics_port,
        _system_config={"metrics_report_interval_ms": 1000},
    )
    try:
        # calibrated, so every answer below is
        spec = validate_spec({**TINY_DIGITS, "evaluate": {"calibration": "temperature"}})
        run_dir = raydl.run(spec, runs_root=tmp_path_factory.mktemp("runs")).run_dir
        predictor = raydl.Predictor.from_run(run_dir)
        # a threshold in the middle of the answers' confidences: some abstain, some do not
        top = [a["probability"] for a in predictor.predict([{"x": IMAGES[i]} for i in range(64)])]
        threshold = float(np.median(top))
        serve_spec = ServeSpec(
            num_cpus=0,
            threshold=threshold,
            max_request_bytes=64 * 1024,
            max_request_rows=100,
            batching={"max_batch_size": 16, "wait_s": 0.02},
        )
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        serve.run(application(str(run_dir), serve_spec), name="digits", route_prefix="/")
        yield {
            "url": f"http://127.0.0.1:{http_port}",
            "run_dir": run_dir,
            "predictor": predictor,
            "threshold": threshold,
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
        }
    finally:
        os.environ.pop(TOKEN_ENV, None)
        serve.shutdown()
        ray.shutdown()


def post(url: str, body, *, raw: bytes | None = None, headers=None):
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def get(url: str):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, json.loads(r.read())


def call(method: str, url: str, body=None, headers=None):
    """(status, JSON answer, headers) of any request, errors included."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), r.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers


def expected(served, rows):
    """The Predictor's offline answers with the server's threshold applied."""
    out = served["predictor"].predict(rows)
    for a in out:
        a["abstained"] = a["probability"] < served["threshold"]
        if a["abstained"]:
            a["label"] = ABSTAIN
    return out


def same(answers, wanted):
    assert [a["label"] for a in answers] == [w["label"] for w in wanted]
    assert [a["abstained"] for a in answers] == [w["abstained"] for w in wanted]
    for a, w in zip(answers, wanted):
        assert a["probabilities"].keys() == w["probabilities"].keys()
        np.testing.assert_allclose(
            list(a["probabilities"].values()), list(w["probabilities"].values()), atol=1e-6
        )
        assert [t["label"] for t in a["top_k"]] == [t["label"] for t in w["top_k"]]


def test_predict_a_list_and_one_row_answers_as_the_predictor_does(served):
    rows = [{"x": IMAGES[i].tolist()} for i in range(100, 140)]
    status, body = post(served["url"] + "/predict", {"instances": rows})
    assert status == 200, body
    same(body["predictions"], expected(served, [{"x": IMAGES[i]} for i in range(100, 140)]))
    assert body["model"] == {
        "name": "digits",
        "version": served["run_dir"].name,
        "run": str(served["run_dir"]),
    }
    labels = {a["label"] for a in body["predictions"]}
    assert ABSTAIN in labels and labels - {ABSTAIN}, "the threshold should split these answers"
    status, one = post(served["url"] + "/predict", rows[0])
    assert status == 200 and len(one["predictions"]) == 1
    same(one["predictions"], expected(served, [{"x": IMAGES[100]}]))


def test_concurrent_requests_are_batched_and_answered_alike(served):
    async def fire():
        async with aiohttp.ClientSession() as s:

            async def one(i):
                async with s.post(served["url"] + "/predict", json={"x": IMAGES[i].tolist()}) as r:
                    return r.status, await r.json()

            return await asyncio.gather(*(one(i) for i in range(200, 248)))

    results = asyncio.run(fire())
    assert {status for status, _ in results} == {200}
    same(
        [b["predictions"][0] for _, b in results],
        expected(served, [{"x": IMAGES[i]} for i in range(200, 248)]),
    )


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "empty request body"),
        (b"[1, 2]", 400, "expected a JSON object"),
        (b'{"instances": []}', 400, "'instances' is empty"),
        (b'{"instances": {"x": 1}}', 400, "'instances' must be a list"),
        (b'{"instances": [{"x": 1}, 5]}', 422, "row 1: expected an object of fields, got a int"),
        (b'{"instances": [{"y": 1}]}', 422, "row 0, field 'y': unknown field"),
        (b'{"instances": [{}]}', 422, "row 0, field 'x'"),
        (b'{"x": "abc"}', 422, "row 0, field 'x'"),
        (
            json.dumps({"instances": [{"x": IMAGES[0].tolist()}, {"x": [[1.0] * 7] * 7}]}).encode(),
            422,
            "row 1, field 'x'",
        ),
        (json.dumps({"x": [[0.0] * 8] * 8, "pad": "a" * 70000}).encode(), 413, "larger than the limit"),
        (
            json.dumps({"instances": [{"x": 0}] * 101}).encode(),
            413,
            "101 rows is more than max_request_rows (100)",
        ),
    ],
)
def test_bad_requests_are_4xx_naming_the_row_and_the_problem(served, body, status, message):
    got, answer = post(served["url"] + "/predict", None, raw=body)
    assert got == status, answer
    assert message in answer["error"], answer["error"]


def test_the_server_stays_up_after_bad_requests(served):
    post(served["url"] + "/predict", None, raw=b"\xff\xfe garbage")
    assert get(served["url"] + "/healthz") == (200, {"status": "ok"})
    status, body = post(served["url"] + "/predict", {"x": IMAGES[5].tolist()})
    assert status == 200 and len(body["predictions"]) == 1


def test_metadata_openapi_and_drift(served):
    _, meta = get(served["url"] + "/metadata")
    assert meta["model"]["name"] == "digits" and meta["classes"] == list(range(10))
    assert meta["input_schema"]["fields"][0]["name"] == "x" and meta["threshold"] == served["threshold"]
    _, doc = get(served["url"] + "/openapi.json")
    body = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][0]["properties"]["instances"]["items"]["required"] == ["x"]
    # answers above the threshold (about half of them) enter the window: -k runs this test alone too
    post(served["url"] + "/predict", {"instances": [{"x": IMAGES[i].tolist()} for i in range(16)]})
    _, drift = get(served["url"] + "/drift")
    assert {"drift", "score", "features", "predictions"} <= drift.keys()
    # images: only their predicted classes are watched (categorical features: test_predict.py)
    assert drift["predictions"]["rows"] > 0 and drift["features"] == {}


def test_open_inference_protocol_v2_with_a_real_client(served):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=served["url"].removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("digits")
    meta = client.get_model_metadata("digits")
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probability", "probabilities"]
    x = httpclient.InferInput("x", [6, 1, 8, 8], "FP32")
    x.set_data_from_numpy(IMAGES[300:306, None].astype(np.float32), binary_data=False)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities")]
    result = client.infer("digits", [x], outputs=outputs)
    wanted = expected(served, [{"x": IMAGES[i]} for i in range(300, 306)])
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == [
        str(w["label"]) for w in wanted
    ]
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), [list(w["probabilities"].values()) for w in wanted], atol=1e-6
    )
    # v2 errors are 4xx with a message, as the protocol has them
    status, body = post(
        served["url"] + "/v2/models/digits/infer",
        {"inputs": [{"name": "x", "shape": [1, 8, 8], "datatype": "FP32", "data": [1.0] * 10}]},
    )
    assert status == 400 and "10 values do not fill shape [1, 8, 8]" in body["error"]
    status, body = post(served["url"] + "/v2/models/other/infer", {"inputs": []})
    assert status == 404 and "unknown model 'other'" in body["error"]


def test_overload_gets_fast_503s_no_hang_and_normal_answers_after(served):
    # a second application on the same Serve: one request at a time, one queued
    tight = ServeSpec(num_cpus=0, batching={"enabled": False}, max_ongoing_requests=1, max_queued_requests=1)
    serve.run(application(str(served["run_dir"]), tight), name="tight", route_prefix="/tight")
    rows = {"instances": [{"x": IMAGES[i].tolist()} for i in range(400)]}

    async def fire():
        async with aiohttp.ClientSession() as s:

            async def one():
                start = time.perf_counter()
                async with s.post(served["url"] + "/tight/predict", json=rows) as r:
                    await r.read()
                    return r.status, time.perf_counter() - start, r.headers.get("Retry-After")

            return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(60))), 120)

    try:
        results = asyncio.run(fire())
        statuses = [s for s, _, _ in results]
        assert set(statuses) <= {200, 503} and statuses.count(503) > 30 and 200 in statuses, statuses
        assert all(after == "1" for s, _, after in results if s == 503)
        status, body = post(served["url"] + "/tight/predict", {"x": IMAGES[1].tolist()})
        assert status == 200 and len(body["predictions"]) == 1
    finally:
        serve.delete("tight")


@pytest.fixture(scope="module")
def hasty(served):
    """A second app on the same Serve, for two tests at the cost of one deployment: a
    timeout no forward pass can meet, behind a bearer token (serve.auth)."""
    spec = ServeSpec(
        num_cpus=0, batching={"enabled": False}, request_timeout_s=1e-6, auth={"token_env": TOKEN_ENV}
    )
    serve.run(application(str(served["run_dir"]), spec), name="hasty", route_prefix="/hasty")
    yield served["url"] + "/hasty"
    serve.delete("hasty")


def test_a_prediction_past_the_request_timeout_answers_504(hasty):
    # the app then still answers its other routes
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body = post(hasty + "/predict", {"x": IMAGES[3].tolist()}, headers=auth)
    assert status == 504 and "longer than request_timeout_s" in body["error"], body
    assert get(hasty + "/healthz") == (200, {"status": "ok"})


def test_a_bearer_token_guards_every_route_but_the_probes(hasty):
    """401 + WWW-Authenticate without the token or with a wrong one (the server stays up),
    the probes open, the right token gets through (to the route's own 504); the token is in
    no Ray log afterwards."""
    url, row = hasty, {"x": IMAGES[9].tolist()}
    guarded = [
        ("POST", "/predict", row),
        ("POST", "/v2/models/digits/infer", {"inputs": []}),
        ("GET", "/v2/models/digits", None),
        ("GET", "/v2/models/digits/ready", None),
        ("GET", "/metadata", None),
        ("GET", "/drift", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", "/v2", None),
    ]
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready"):
        assert call("GET", url + path)[0] == 200, path
    wrong = TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")
    for method, path, body in guarded:
        status, answer, headers = call(method, url + path, body)
        assert status == 401 and "Authorization: Bearer <token>" in answer["error"], (path, answer)
        assert headers["WWW-Authenticate"] == 'Bearer realm="raydl"', path
        for header in (f"Bearer {wrong}", f"Basic {TOKEN}", "Bearer", TOKEN):
            status, answer, headers = call(method, url + path, body, {"Authorization": header})
            assert status == 401 and "invalid bearer token" in answer["error"], (path, header)
            assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body, _ = call("POST", url + "/predict", row, auth)
    assert status == 504 and "request_timeout_s" in body["error"], body  # past the token check
    status, meta, _ = call("GET", url + "/v2/models/digits", None, auth)
    assert status == 200 and meta["name"] == "digits"
    _, doc, _ = call("GET", url + "/openapi.json", None, auth)
    assert doc["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert doc["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]
    assert call("GET", url + "/healthz")[0] == 200  # up after all the refusals
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())
    leaked = [p for p in logs.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert leaked == [], leaked


def test_more_rows_than_max_request_rows_is_413_on_both_protocols(served):
    rows = [{"x": IMAGES[i].tolist()} for i in range(100)]
    status, body = post(served["url"] + "/predict", {"instances": rows})
    assert status == 200 and len(body["predictions"]) == 100  # the limit itself is allowed
    status, body = post(served["url"] + "/predict", {"instances": [*rows, rows[0]]})
    assert status == 413 and "101 rows is more than max_request_rows (100)" in body["error"], body
    v2 = {"inputs": [{"name": "x", "shape": [101, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 6464}]}
    status, body = post(served["url"] + "/v2/models/digits/infer", v2)
    assert status == 413 and "max_request_rows (100)" in body["error"], body


def test_fuzzed_requests_from_the_openapi_document_never_get_a_5xx(served):
    """schemathesis reads the app's own /openapi.json and sends each operation a few cases
    that fit its schema and a few that do not, the same ones every run: bad input must be a
    4xx, never a 5xx. (Not schemathesis' pytest plugin: 4.32's LazySchema reads
    Node._nodeid, which pytest 9.2 no longer has.)"""
    schema = schemathesis.openapi.from_url(served["url"] + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /predict", "POST /v2/models/{name}/infer"}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=5,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(mode))
            def check(case):
                case.call_and_validate(checks=[not_a_server_error])

            try:
                check()
            except Unsatisfiable:  # no parameters or body: nothing to make invalid
                assert mode is GenerationMode.NEGATIVE, operation.label


def test_metrics_endpoint_carries_the_counters(served):
    post(served["url"] + "/predict", {"x": IMAGES[2].tolist()})
    text, deadline = "", time.time() + 60
    while time.time() < deadline:
        with urllib.request.urlopen(served["metrics"], timeout=30) as r:
            text = r.read().decode()
        if "raydl_requests" in text and "raydl_batch_size" in text and "raydl_predictions" in text:
            break
        time.sleep(1)
    ok = re.search(r'raydl_requests_total\{[^}]*route="/predict"[^}]*status="200"[^}]*\} (\d+)', text)
    assert ok and int(float(ok.group(1))) >= 1, text[:2000]
    assert re.search(r'raydl_requests_total\{[^}]*status="422"', text)
    assert "raydl_request_latency_ms_bucket" in text and "raydl_abstentions" in text


def test_config_file_is_one_serve_deploy_accepts(served, tmp_path):
    from ray.serve.schema import ServeDeploySchema

    out = tmp_path / "serve.yaml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "raydl.cli",
            "serve",
            str(served["run_dir"]),
            "--config",
            str(out),
            "--port",
            "8123",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    config = ServeDeploySchema.model_validate(yaml.safe_load(out.read_text()))
    (app,) = config.applications
    assert app.import_path == "raydl.serve.app:build_app" and app.args["run_dir"] == str(served["run_dir"])
    assert config.http_options.host == "127.0.0.1" and config.http_options.port == 8123
    (dep,) = app.deployments
    assert dep.max_ongoing_requests >= ServeSpec().batching.max_batch_size


def test_raydl_serve_prints_its_url_and_stops_on_ctrl_c(served, tmp_path):
    port = free_port()
    # stderr to a file: a pipe nobody reads fills (64 KB of Ray's and Serve's logs) and
    # blocks the server mid-exit; the file says what it was doing
    err = tmp_path / "serve.err"
    with err.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "raydl.cli", "serve", str(served["run_dir"]), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            env={**os.environ, "RAY_ADDRESS": ""},
        )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line, (line, proc.poll(), err.read_text()[-3000:])
        status, body = post(f"http://127.0.0.1:{port}/predict", {"x": IMAGES[7].tolist()})
        assert status == 200 and len(body["predictions"]) == 1
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 130, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_raydl_serve_without_its_token_fails_at_once_and_configs_never_hold_it(served, tmp_path):
    run = shutil.copytree(served["run_dir"], tmp_path / served["run_dir"].name)
    spec = yaml.safe_load((run / "spec.yaml").read_text())
    spec["serve"] = {"auth": {"token_env": "RAYDL_TEST_SERVE_TOKEN_UNSET"}}
    (run / "spec.yaml").write_text(yaml.safe_dump(spec))
    base = [sys.executable, "-m", "raydl.cli", "serve", str(run)]
    env = {k: v for k, v in os.environ.items() if k != "RAYDL_TEST_SERVE_TOKEN_UNSET"}
    done = subprocess.run(
        [*base, "--port", str(free_port())], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: serve.auth.token_env: the environment variable "), line
    # a config file names the variable, never its value (here: set, so a leak would show)
    env["RAYDL_TEST_SERVE_TOKEN_UNSET"] = TOKEN
    done = subprocess.run(
        [*base, "--config", str(tmp_path / "serve.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "serve.yaml").read_text()
    assert TOKEN not in text and TOKEN not in done.stdout + done.stderr
    (app,) = yaml.safe_load(text)["applications"]
    assert app["args"]["serve"]["auth"]["token_env"] == "RAYDL_TEST_SERVE_TOKEN_UNSET"


def _broken_copy(run_dir, where):
    """A copy of the run whose selected model loads but raises on every call: an ONNX
    graph of a 3-input linear layer, fed 64 pixels."""
    import shutil

    import torch

    from raydl.backends import write_selected

    shutil.copytree(run_dir, where)
    (where / "model").mkdir(exist_ok=True)
    torch.onnx.export(
        torch.nn.Linear(3, 10),
        (torch.zeros(1, 3),),
        str(where / "model" / "broken.onnx"),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}},
        external_data=False,
    )
    write_selected(where / "model", "onnx", {"onnx": "broken.onnx"}, source="test")
    return where


@pytest.fixture(scope="module")
def versions(served, tmp_path_factory):
    """Two routed apps over the session's run: a 70/30 split with a shadow that always
    fails (/ab), and a shadow that is a copy of the main run (/shadow), behind a token."""
    import shutil

    tmp = tmp_path_factory.mktemp("versions")
    run = served["run_dir"]
    canary = shutil.copytree(run, tmp / "canary")
    broken = _broken_copy(run, tmp / "broken")
    base = {"num_cpus": 0, "batching": {"enabled": False}}
    ab = ServeSpec(**base, versions=[{"run": str(canary), "weight": 0.3}], shadow=str(broken), seed=0)
    twin = ServeSpec(**base, shadow=str(canary), auth={"token_env": TOKEN_ENV})  # the router checks it
    serve.run(application(str(run), ab), name="ab", route_prefix="/ab")
    serve.run(application(str(run), twin), name="twin", route_prefix="/shadow")
    return served["url"]


def test_a_weighted_split_serves_both_versions_near_their_weights(versions):
    rows = [{"x": IMAGES[i].tolist()} for i in range(3)]
    seen = [post(f"{versions}/ab/predict", {"instances": rows}) for _ in range(200)]
    assert {s for s, _ in seen} == {200}  # the failing shadow never reaches a client
    shares = {v: sum(b["model"]["version"] == v for _, b in seen) / len(seen) for v in ("main", "canary-1")}
    assert sum(shares.values()) == 1
    assert 0.2 < shares["canary-1"] < 0.4, shares
    _, listed = get(f"{versions}/ab/versions")
    assert [(v["name"], v["weight"]) for v in listed["versions"]] == [("main", 0.7), ("canary-1", 0.3)]
    assert listed["shadow"]["failed"] == listed["shadow"]["requests"] > 0
    assert listed["shadow"]["agreement"] is None
    _, meta = get(f"{versions}/ab/metadata")
    assert meta["classes"] and len(meta["versions"]) == 2


def test_a_shadow_sees_the_traffic_its_answers_are_compared_never_returned(versions):
    rows = [{"x": IMAGES[i].tolist()} for i in range(4)]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(10):
        status, body = post(f"{versions}/shadow/predict", {"instances": rows}, headers=auth)
        assert status == 200 and body["model"]["version"] == "main"
    status, _ = post(f"{versions}/shadow/predict", {"instances": [{"y": 1}]}, headers=auth)
    assert status == 422  # the main run's answer, checks and all
    # the router is this app's ingress: serve.auth holds there, refused requests reach no version
    for method, path in (("POST", "/predict"), ("GET", "/versions"), ("GET", "/metadata")):
        status, answer, _ = call(method, f"{versions}/shadow{path}", {"instances": rows})
        assert status == 401 and "bearer token" in answer["error"], (path, answer)
    assert call("GET", f"{versions}/shadow/healthz")[0] == 200
    deadline = time.time() + 20

    def shadowed():
        return call("GET", f"{versions}/shadow/versions", None, auth)[1]["shadow"]

    while (shadow := shadowed())["rows"] < 40 and time.time() < deadline:
        time.sleep(0.2)
    assert shadow["model"]["version"] == "shadow"
    assert shadow["rows"] == 40 and shadow["agreement"] == 1.0  # the same model answers alike


def test_the_val_fitted_temperature_is_saved_and_applied_to_served_answers(served):
    run = served["run_dir"]
    cal = json.loads((run / "calibration.json").read_text())
    assert cal["fitted_on"] == "val" and cal["temperature"] > 0
    assert json.loads((run / "metrics.json").read_text())["calibration"] == cal
    assert served["predictor"].temperature == cal["temperature"]
    rows = [{"x": IMAGES[i].tolist()} for i in range(5)]
    _, body = post(f"{served['url']}/predict", {"instances": rows})
    raw = raydl.Predictor.from_run(run, temperature=1.0).predict(rows)
    for got, plain in zip(body["predictions"], raw, strict=True):
        logp = np.log(np.array(list(plain["probabilities"].values())))
        want = np.exp(logp / cal["temperature"])
        want /= want.sum()
        assert np.allclose(list(got["probabilities"].values()), want, atol=1e-5)


def test_a_killed_replica_is_replaced_and_retrying_clients_lose_nothing(served):
    """Last in the module: it kills the session app's one replica (ray.kill, for real) under a
    steady load of 4 clients (2 retry on 5xx and connection errors) for 6 s, or until Serve has
    replaced it (mostly Serve's 10 s health-check period and the new replica's start)."""
    body = json.dumps({"x": IMAGES[11].tolist()}).encode()
    report = kill_replica_under_load(
        served["url"] + "/predict", body, app="digits", deployment="Model", clients=4, seconds=6
    )
    assert report["replaced"], report  # HEALTHY, 1 RUNNING again, under a new replica id
    before, after = report["replicas"]["before"], report["replicas"]["after"]
    assert len(before) == len(after) == 1 and not set(before) & set(after), report
    plain, retrying = report["plain"], report["retrying"]
    assert plain["sent"] > 10 and retrying["sent"] > 10, report
    assert plain["answered_after"] > 0 and retrying["answered_after"] > 0, report  # on the new one
    assert retrying["lost"] == 0, report
    status, answer = post(served["url"] + "/predict", {"x": IMAGES[11].tolist()})
    assert status == 200, answer
    same(answer["predictions"], expected(served, [{"x": IMAGES[11]}]))


# The RayService's pods run Serve's HAProxy ingress (raydl.serve.config.SERVICE_RAY_ENV). Serve
# reads it where Ray starts, so it gets a Ray of its own (last in the module, after the session
# app's own tests and `raydl serve`'s): this child process, on the session
# run's model, with HAProxy's files and stats/metrics ports in places of its own.
HAPROXY_CHILD = r"""
import asyncio, glob, json, os, sys, time, urllib.error, urllib.request
import aiohttp, ray, sklearn.datasets
from ray import serve
from raydl.serve.app import application
from raydl.spec.serve import ServeSpec

run_dir, port = sys.argv[1], int(sys.argv[2])
images = sklearn.datasets.load_digits().images
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
serve.start(http_options={"host": "127.0.0.1", "port": port})
tight = ServeSpec(num_cpus=0, batching={"enabled": False}, max_ongoing_requests=1, max_queued_requests=1)
hasty = ServeSpec(num_cpus=0, batching={"enabled": False}, request_timeout_s=1e-6)
serve.run(application(run_dir, tight), name="tight", route_prefix="/tight")
serve.run(application(run_dir, hasty), name="hasty", route_prefix="/hasty")
url = f"http://127.0.0.1:{port}"

def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()

rows = {"instances": [{"x": images[i].tolist()} for i in range(400)]}

async def fire():
    async with aiohttp.ClientSession() as s:
        async def one():
            start = time.perf_counter()
            async with s.post(url + "/tight/predict", json=rows) as r:
                await r.read()
                return r.status, time.perf_counter() - start, r.headers.get("Retry-After")
        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(60))), 120)

out = {"overload": asyncio.run(fire())}
out["after"] = call("/tight/predict", {"x": images[1].tolist()})
out["bad"] = call("/tight/predict", {"instances": []})
out["hasty"] = call("/hasty/predict", {"x": images[3].tolist()})
out["probes"] = {p: call(p) for p in ("/-/healthz", "/-/routes", "/tight/healthz")}
# the HAProxy process serving this Ray, on its config (in a folder per node under the scratch's)
scratch = os.environ["RAY_SERVE_HAPROXY_SERVER_STATE_BASE"]
def cmdline(p):
    try:
        return open(p, "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # ended meanwhile
        return ""

cmds = [cmdline(p) for p in glob.glob("/proc/[0-9]*/cmdline")]
out["haproxy"] = [c for c in cmds if "bin/haproxy" in c and f"-f {scratch}/" in c]
print("RESULT " + json.dumps(out), flush=True)
ray.shutdown()  # HAProxy goes with Ray's processes; serve.shutdown() first waits 30 s for it to drain
"""


def _read(cmdline: Path) -> str:
    try:
        return cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:  # the process ended meanwhile
        return ""


def test_under_haproxy_ingress_overload_is_503_a_timeout_504_and_kuberays_probes_answer(served):
    from raydl.serve.config import SERVICE_RAY_ENV

    scratch = tempfile.mkdtemp(prefix="hap-", dir="/tmp")  # HAProxy: socket paths under 98 chars
    env = {
        **os.environ,
        **SERVICE_RAY_ENV,
        "RAY_ADDRESS": "",
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{scratch}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{scratch}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": scratch,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{scratch}/server-state",
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": f"{scratch}/metrics.sock",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    }
    try:
        child = subprocess.run(
            [sys.executable, "-c", HAPROXY_CHILD, str(served["run_dir"]), str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        # nothing is left running on the child's HAProxy config
        left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if scratch in _read(p)]
        assert not left, [_read(p) for p in left]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines = [ln for ln in child.stdout.splitlines() if ln.startswith("RESULT ")]
    assert child.returncode == 0 and lines, child.stderr[-3000:]
    out = json.loads(lines[0][len("RESULT ") :])
    # a full queue: fast 503s with Retry-After, from the replica (HAProxy has no queue of Serve's)
    statuses = [s for s, _, _ in out["overload"]]
    assert set(statuses) <= {200, 503} and statuses.count(503) > 30 and 200 in statuses, statuses
    assert all(after == "1" for s, _, after in out["overload"] if s == 503)
    assert max(seconds for s, seconds, _ in out["overload"] if s == 503) < 30
    assert out["after"][0] == 200 and len(json.loads(out["after"][1])["predictions"]) == 1
    status, body = out["bad"]
    assert status == 400 and "empty" in json.loads(body)["error"], out["bad"]
    status, body = out["hasty"]  # the app's own timeout, not HAProxy's or the replica's 408
    assert status == 504 and "longer than request_timeout_s" in json.loads(body)["error"], out["hasty"]
    assert out["haproxy"], "no HAProxy process ran on the child's config"
    probes = out["probes"]  # KubeRay's readiness probe and Serve's routes, answered by HAProxy
    assert probes["/-/healthz"][0] == 200
    assert json.loads(probes["/-/routes"][1]) == {"/tight": "tight", "/hasty": "hasty"}
    assert probes["/tight/healthz"][0] == 200 and json.loads(probes["/tight/healthz"][1]) == {"status": "ok"}

"""The serve app for the other kinds of run, over real HTTP to real Ray Serve on the
session's Ray (the digits app and the rest of serving: tests/e2e/test_serve.py): a CSV with
categories and gaps, BBC News text, and a PNG folder, from the session's trained runs. One
row and a list answer as the Predictor does offline; a bad row is a 422 that names it; an
image is taken as base64 data only, never as a path on the server."""

import base64
import json
import math
import socket
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest
from ray import serve

import raydl
from raydl.serve.app import application
from raydl.spec.serve import ServeSpec

pytestmark = pytest.mark.integration

FEATURES = ["a", "b", "c", "color", "city"]
TEXTS = [
    "The chancellor said the economy grew faster than the bank of england expected this year.",
    "The striker scored twice as the club won the cup final at wembley on saturday.",
    "The band's new album went straight to number one in the charts.",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="module")
def apps(ray_cluster, table_run, image_run, bbc_run):
    """One Serve, three apps: /table, /image, /text (batched, as a spec has it by default)."""
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    runs = {"table": table_run[0], "image": image_run[0].run_dir, "text": bbc_run.run_dir}
    spec = ServeSpec(num_cpus=0, batching={"max_batch_size": 8, "wait_s": 0.01})
    try:
        for name, run_dir in runs.items():
            serve.run(application(str(run_dir), spec), name=name, route_prefix=f"/{name}")
        base = f"http://127.0.0.1:{port}"
        yield {name: (f"{base}/{name}", raydl.Predictor.from_run(d)) for name, d in runs.items()}
    finally:
        serve.shutdown()


def _same(answers: list[dict], wanted: list[dict]) -> None:
    assert [a["label"] for a in answers] == [w["label"] for w in wanted]
    for a, w in zip(answers, wanted, strict=True):
        assert a["probabilities"].keys() == w["probabilities"].keys()
        got, want = list(a["probabilities"].values()), list(w["probabilities"].values())
        np.testing.assert_allclose(got, want, atol=1e-6)


def _check(url: str, predictor, rows: list[dict]) -> None:
    """A list, then one row alone, answer as the Predictor does offline."""
    status, body = _post(url + "/predict", {"instances": rows})
    assert status == 200, body
    _same(body["predictions"], predictor.predict(rows))
    status, body = _post(url + "/predict", rows[0])
    assert status == 200 and len(body["predictions"]) == 1, body
    _same(body["predictions"], predictor.predict(rows[:1]))


def test_a_table_with_gaps_and_categories_answers_as_the_predictor(apps, table_run):
    url, predictor = apps["table"]
    frame = pd.read_csv(table_run[1]).iloc[[0, 1, 5, 6, 20, 21, 33]]  # gaps in a (5, 6) and color (20, 21)
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k in FEATURES}
        for r in frame.to_dict("records")
    ]
    assert any(r["a"] is None for r in rows) and any(r["color"] is None for r in rows)
    _check(url, predictor, rows)
    status, body = _post(url + "/predict", {"instances": [rows[0], {**rows[1], "b": "not a number"}]})
    assert status == 422 and body["problems"][0]["row"] == 1 and body["problems"][0]["field"] == "b", body


def test_text_answers_as_the_predictor(apps):
    url, predictor = apps["text"]
    _check(url, predictor, [{"text": t} for t in TEXTS])
    status, body = _post(url + "/predict", {"instances": [{"text": TEXTS[0]}, {"text": 5}]})
    assert status == 422 and body["problems"][0]["row"] == 1, body


def test_images_are_taken_as_base64_and_never_as_a_path_on_the_server(apps, image_run):
    url, predictor = apps["image"]
    files = sorted(image_run[1].glob("digit*/*.png"))[:5]
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]
    rows = [{"image": e} for e in encoded[:4]] + [{"image": f"data:image/png;base64,{encoded[4]}"}]
    _check(url, predictor, rows)
    # the answers are the files' own: the Predictor given their bytes
    status, body = _post(url + "/predict", {"instances": rows})
    _same(body["predictions"], predictor.predict([{"image": f.read_bytes()} for f in files]))
    # a real PNG's path on the server, and a file that is not there: the same 422, nothing read
    for path in (str(files[0]), "/no/such/file.png"):
        status, body = _post(url + "/predict", {"instances": [rows[0], {"image": path}]})
        assert status == 422, body
        (problem,) = body["problems"]
        assert problem["row"] == 1 and problem["field"] == "image"
        assert "a server reads no files" in problem["reason"], body
    status, body = _post(url + "/predict", {"image": base64.b64encode(b"not an image").decode()})
    assert status == 422 and "cannot decode as an image" in body["error"], body

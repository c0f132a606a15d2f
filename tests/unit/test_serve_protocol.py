"""The wire formats without Ray: /predict bodies and the Open Inference Protocol v2
translation refuse what they cannot use with the status and a message naming the input;
the serve config is one Ray Serve's schema accepts, and the RayService carries the same app."""

import pytest

from raydl.serve import protocol
from raydl.serve.config import application, config_file
from raydl.serve.protocol import BadRequest
from raydl.spec import validate_spec
from raydl.spec.serve import ServeSpec

SCHEMA = {
    "fields": [
        {"name": "a", "kind": "number", "required": True},
        {
            "name": "color",
            "kind": "category",
            "categories": ["red", "blue"],
            "required": False,
            "fill": "red",
        },
        {"name": "x", "kind": "tensor", "shape": [2, 2], "required": True},
    ]
}


def refused(fn, *args):
    with pytest.raises(BadRequest) as e:
        fn(*args)
    return e.value.status, e.value.message


def test_v2_inputs_become_rows_column_by_column():
    payload = {
        "inputs": [
            {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [1.5, 2.5]},
            {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["red", "blue"]},
            {
                "name": "x",
                "shape": [2, 2, 2],
                "datatype": "FP32",
                "data": [[[1, 2], [3, 4]], [[5, 6], [7, 8]]],
            },
        ]
    }
    rows = protocol.v2_rows(payload, SCHEMA)
    assert rows == [
        {"a": 1.5, "color": "red", "x": [[1.0, 2.0], [3.0, 4.0]]},
        {"a": 2.5, "color": "blue", "x": [[5.0, 6.0], [7.0, 8.0]]},
    ]


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"inputs": []}, "expected {'inputs'"),
        ({"inputs": [{"name": "b", "shape": [1], "datatype": "FP32", "data": [1]}]}, "unknown input 'b'"),
        ({"inputs": [{"name": "a", "shape": [1], "datatype": "FLOAT", "data": [1]}]}, "datatype 'FLOAT'"),
        (
            {"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "data": [1]}]},
            "1 values do not fill shape [2]",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": ["x"]}]},
            "input 'a': data is not FP32",
        ),
        (
            {
                "inputs": [
                    {"name": "a", "shape": [1], "datatype": "FP32", "data": [1]},
                    {"name": "color", "shape": [2], "datatype": "BYTES", "data": ["red", "red"]},
                ]
            },
            "disagree on the number of rows",
        ),
    ],
)
def test_bad_v2_requests_are_400_naming_the_input(payload, message):
    status, text = refused(protocol.v2_rows, payload, SCHEMA)
    assert status == 400 and message in text, text


def test_predict_bodies_and_their_refusals():
    assert protocol.predict_rows({"a": 1}) == ([{"a": 1}], True)
    assert protocol.predict_rows({"instances": [{"a": 1}]}) == ([{"a": 1}], False)
    assert refused(protocol.parse_json, b"x" * 2000, 1024)[0] == 413
    assert refused(protocol.parse_json, b"{", 1024) == (
        400,
        "malformed JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    )
    assert (
        refused(protocol.predict_rows, {"instances": [], "extra": 1})[1]
        == "unknown key(s) ['extra'] beside 'instances'"
    )
    missing = protocol.missing_fields([{"a": 1}, {"x": 1}], SCHEMA)
    assert [str(p) for p in missing] == [
        "row 0, field 'x': missing field; the model needs it",
        "row 1, field 'a': missing field; the model needs it",
    ]


def test_threshold_turns_low_confidence_into_abstain():
    answers = [{"label": 1, "probability": 0.9}, {"label": 2, "probability": 0.4}]
    assert protocol.apply_threshold(answers, 0.5) == 1
    assert [(a["label"], a["abstained"]) for a in answers] == [(1, False), (protocol.ABSTAIN, True)]


def test_the_serve_config_is_one_serve_deploy_accepts_and_the_rayservice_carries_it():
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from raydl.cluster.kuberay import render

    spec = ServeSpec(batching={"max_batch_size": 16}, max_queued_requests=10, overload_status=429)
    config = ServeDeploySchema.model_validate(config_file(spec, "/runs/digits-1", name="digits"))
    (dep,) = config.applications[0].deployments
    assert dep.max_ongoing_requests == 32 and dep.max_queued_requests == 10
    assert dep.backpressure_config.status_code == 429
    job = validate_spec(
        {
            "name": "digits",
            "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
            "model": {"arch": "cnn"},
            "serve": spec.model_dump(),
            "cluster": {"storage": "s3://bucket/runs"},
        }
    )
    (service,) = [o for o in render(job) if o["kind"] == "RayService"]
    (app,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    assert app == application(spec, "s3://bucket/runs", name="digits", job="digits")


def test_a_batch_larger_than_the_requests_a_replica_holds_is_a_spec_error():
    with pytest.raises(
        ValueError, match=r"max_ongoing_requests \(8\) must be at least batching.max_batch_size \(32\)"
    ):
        ServeSpec(max_ongoing_requests=8)

"""`raydl schema` as a user reads it: every field described, each arch's params shown."""

import json

from typer.testing import CliRunner

from raydl.catalog import MODELS
from raydl.cli import app


def _schema() -> dict:
    out = CliRunner().invoke(app, ["schema"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def _fields(node, path="(spec)"):
    """(dotted location, property schema) of every property of every object schema,
    skipping `if` clauses (they match on a value; they declare no field)."""
    if isinstance(node, dict):
        for name, prop in node.get("properties", {}).items():
            yield f"{path}.{name}", prop
        for key, child in node.items():
            if key != "if":
                yield from _fields(child, f"{path}.{key}" if key not in ("properties",) else path)
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _fields(child, f"{path}[{i}]")


def test_every_field_in_raydl_schema_has_a_description():
    fields = list(_fields(_schema()))
    assert len(fields) > 250  # the whole spec (221 fields before the per-arch params), and those
    missing = [where for where, prop in fields if not prop.get("description")]
    assert missing == []


def test_schema_shows_each_archs_params_with_defaults():
    model = _schema()["$defs"]["ModelSpec"]
    params = {
        rule["if"]["properties"]["arch"]["const"]: rule["then"]["properties"]["params"]
        for rule in model["allOf"]
    }
    assert set(params) == set(MODELS.names())
    cnn = params["cnn"]["properties"]
    assert cnn["channels"]["default"] == [32, 64] and cnn["dropout"]["default"] == 0.0
    assert params["cnn"]["additionalProperties"] is False
    assert params["mlp"]["properties"]["activation"]["enum"] == ["relu", "gelu", "tanh", "silu"]
    assert "vocab_size" in params["gpt2"]["properties"] and "hidden" not in params["resnet"]["properties"]


def test_schema_accepts_every_example_job_and_rejects_a_params_typo(repo_root):
    """What an editor does with `raydl schema`: the example jobs pass, a typo in an
    arch's params does not."""
    import glob

    import jsonschema
    import yaml

    validator = jsonschema.Draft202012Validator(_schema())
    for path in sorted(glob.glob(f"{repo_root}/jobs/*.yaml")):
        with open(path) as f:
            assert [e.message for e in validator.iter_errors(yaml.safe_load(f))] == [], path
    with open(f"{repo_root}/jobs/digits_cnn.yaml") as f:
        raw = yaml.safe_load(f)
    raw["model"]["params"] = {"chanels": [8]}
    assert [e.message for e in validator.iter_errors(raw)] == [
        "Additional properties are not allowed ('chanels' was unexpected)"
    ]

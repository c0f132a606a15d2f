"""serve.versions / serve.shadow: each problem one line at validation (no Ray)."""

import pytest

from raydl.errors import SpecError
from raydl.spec import validate_spec

BASE = {
    "name": "d",
    "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
    "model": {"arch": "cnn"},
}


def problems(serve):
    with pytest.raises(SpecError) as e:
        validate_spec({**BASE, "serve": serve})
    return str(e.value).splitlines()


def test_a_split_and_a_shadow_validate():
    spec = validate_spec(
        {**BASE, "serve": {"versions": [{"run": "runs/b", "weight": 0.1}], "shadow": "runs/c"}}
    )
    assert spec.serve.routed and spec.serve.versions[0].weight == 0.1


def test_each_bad_field_is_one_line():
    lines = problems({"versions": [{"weight": 2}, {"run": "b", "weight": 0.1, "colour": 1}], "shadow": ""})
    assert lines == [
        "serve.versions[0].run: required, but missing",
        "serve.versions[0].weight: must be less than 1, got 2",
        "serve.versions[1].colour: unknown key; allowed: name, run, weight",
        "serve.shadow: must have at least 1 character, got ''",
    ]


def test_weights_must_leave_the_main_run_traffic_and_names_be_unique():
    (line,) = problems({"versions": [{"run": "a", "weight": 0.6}, {"run": "b", "weight": 0.5}]})
    assert "sum to 1.1" in line and "< 1" in line
    (line,) = problems({"versions": [{"run": "a", "weight": 0.1, "name": "main"}]})
    assert "unique and not 'main'" in line

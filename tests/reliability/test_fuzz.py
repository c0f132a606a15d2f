"""Bad input, generated (hypothesis): malformed job specs, spec files and overrides, and
malformed rows for the Predictor end in raydl's own errors — a spec problem per line with
its dotted path, a bad row named by index and field — never a traceback or a hang.
Derandomized, so CI explores the same cases on every run."""

import copy
import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raydl.checks import apply_overrides, read_spec_file, validate_spec
from raydl.errors import RequestError, SpecError
from raydl.predict import Collected
from tests.unit.test_raw_rows import images, mlp_predictor, table

FUZZ = settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
BASE = read_spec_file("jobs/digits_cnn.yaml")
PROBLEM = re.compile(r"^\S+?: \S")  # "dotted.path: message"


def _paths(node, prefix=()):
    for key, value in node.items():
        yield ".".join((*prefix, key))
        if isinstance(value, dict):
            yield from _paths(value, (*prefix, key))


PATHS = sorted(_paths(BASE)) + ["name", "data.source.builtin", "model.params.nope", "tune", "compress.x"]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24)
    | st.sampled_from(["", "-1", "1e309", "nan", "module:function", "os:system", "../../etc/passwd", "∞"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _set(raw: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = raw
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def _one_line_each(e: SpecError) -> None:
    assert e.problems, "a SpecError with no problem in it"
    for line in e.problems:
        assert "\n" not in line and PROBLEM.match(line), line
        assert "Traceback" not in line


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4))
def test_a_malformed_spec_is_one_line_per_problem(changes):
    raw = copy.deepcopy(BASE)
    for dotted, value in changes:
        _set(raw, dotted, value)
    try:
        validate_spec(raw, local_paths=False)
    except SpecError as e:
        _one_line_each(e)


@FUZZ
@given(VALUES)
def test_a_spec_that_is_not_a_mapping_is_one_line(value):
    if isinstance(value, dict):
        value = [value]
    with pytest.raises(SpecError) as e:
        validate_spec(value)
    _one_line_each(e.value)


@FUZZ
@given(st.lists(st.text(max_size=30), min_size=1, max_size=3))
def test_malformed_overrides_are_one_line_each(overrides):
    try:
        validate_spec(apply_overrides(copy.deepcopy(BASE), overrides), local_paths=False)
    except SpecError as e:
        _one_line_each(e)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_a_malformed_spec_file_is_one_line(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("spec") / "job.yaml"
    path.write_bytes(content)
    try:
        raw = read_spec_file(path)
        validate_spec(raw, local_paths=False)
    except SpecError as e:
        _one_line_each(e)


TABLE = mlp_predictor(table())
IMAGES = mlp_predictor(images())
CELLS = (
    SCALARS
    | st.binary(max_size=16)
    | st.lists(SCALARS, max_size=2)
    | st.dictionaries(st.text(max_size=3), SCALARS, max_size=2)
)
TABLE_ROWS = st.lists(
    st.dictionaries(st.sampled_from(["a", "b", "B", "color", "city", "id", "y", "extra"]), CELLS, max_size=6),
    max_size=5,
)


def _answers_or_named_rows(predictor, given_rows):
    """Collected: one answer or one named problem per row; raise: a RequestError."""
    if not given_rows:
        with pytest.raises(RequestError, match="no rows given"):
            predictor.predict(given_rows, errors="collect")
        return
    got = predictor.predict(given_rows, errors="collect", unknown="ignore")
    assert isinstance(got, Collected)
    bad = {p.row for p in got.errors}
    assert len(got.predictions) == len(given_rows)
    for i, answer in enumerate(got.predictions):
        if answer is None:
            assert i in bad or None in bad, f"row {i} has no answer and no problem"
        else:
            assert i not in bad
            assert answer["label"] in predictor.classes and math.isfinite(answer["probability"])
    try:
        predictor.predict(given_rows)
    except RequestError as e:
        assert e.lines() and all(line.startswith(("row ", "request")) for line in e.lines()), e.lines()


@FUZZ
@given(TABLE_ROWS)
def test_malformed_table_rows_are_answered_or_named(given_rows):
    _answers_or_named_rows(TABLE, given_rows)


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {"image": st.binary(max_size=64) | st.text(max_size=40) | SCALARS | st.just(b"\x89PNG\r\n\x1a\n")}
        ),
        max_size=4,
    )
)
def test_malformed_images_are_answered_or_named(given_rows):
    _answers_or_named_rows(IMAGES, given_rows)


@FUZZ
@given(VALUES | st.binary(max_size=16))
def test_a_request_that_is_not_rows_is_refused_with_a_message(value):
    try:
        TABLE.predict(value)
    except RequestError as e:
        assert e.lines()
    else:  # only a row (a dict) or rows can be answered
        assert isinstance(value, (dict, list, np.ndarray))

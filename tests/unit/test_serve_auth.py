"""serve.auth and serve.max_request_rows as a spec states them, and the token check as the
middleware makes it (no Ray: the served behaviour is in tests/e2e/test_serve.py)."""

import pytest

from raydl.errors import RaydlError, SpecError
from raydl.serve.auth import authorized, required_token, route_path
from raydl.spec import validate_spec
from raydl.spec.serve import AuthSpec

BASE = {
    "name": "d",
    "data": {"source": {"type": "builtin", "name": "digits"}, "label": "target"},
    "model": {"arch": "cnn"},
}


def problems(serve):
    with pytest.raises(SpecError) as e:
        validate_spec({**BASE, "serve": serve})
    return str(e.value).splitlines()


def test_auth_is_off_by_default_and_rows_are_limited():
    spec = validate_spec({**BASE, "serve": {}}).serve
    assert spec.auth.token_env is None and spec.max_request_rows == 1024


def test_each_bad_auth_field_is_one_line():
    lines = problems({"auth": {"token_env": "MY-TOKEN", "secret": "Bad_Name"}, "max_request_rows": 0})
    assert [line.split(":")[0] for line in lines] == [
        "serve.max_request_rows",
        "serve.auth.token_env",
        "serve.auth.secret",
    ], lines
    (line,) = problems({"auth": {"secret": "serve-token"}})
    assert "needs token_env" in line, line


def test_a_missing_or_empty_token_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("RAYDL_UNIT_TOKEN", "  ")
    with pytest.raises(RaydlError, match="RAYDL_UNIT_TOKEN is empty or not set"):
        required_token(AuthSpec(token_env="RAYDL_UNIT_TOKEN"))
    monkeypatch.setenv("RAYDL_UNIT_TOKEN", "abc\n")  # a Secret made from a file ends in a newline
    assert required_token(AuthSpec(token_env="RAYDL_UNIT_TOKEN")) == "abc"
    assert required_token(AuthSpec()) is None


@pytest.mark.parametrize(
    "header, ok",
    [
        ("Bearer abc", True),
        ("bearer abc", True),  # the scheme is case-insensitive (RFC 7235)
        ("Bearer abd", False),
        ("Bearer ab", False),
        ("Basic abc", False),
        ("abc", False),
        ("Bearer", False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_bearer_token_itself_is_authorized(header, ok):
    assert authorized(header, "abc") is ok


def test_probes_are_matched_under_the_route_prefix():
    assert route_path({"path": "/secure/healthz", "root_path": "/secure"}) == "/healthz"
    assert route_path({"path": "/healthz", "root_path": ""}) == "/healthz"
    assert route_path({"path": "/secure", "root_path": "/secure"}) == "/"

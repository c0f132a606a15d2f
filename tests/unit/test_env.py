"""raydl.env: the variables set for the processes an embedded Ray starts are this
process's own again afterwards."""

import os

import pytest

from raydl import env


def test_environ_sets_inside_and_restores_or_removes_after(monkeypatch):
    monkeypatch.setenv("RAYDL_TEST_KEPT", "before")
    monkeypatch.delenv("RAYDL_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError), env.environ(RAYDL_TEST_KEPT="inside", RAYDL_TEST_NEW="new"):
        assert os.environ["RAYDL_TEST_KEPT"] == "inside" and os.environ["RAYDL_TEST_NEW"] == "new"
        raise RuntimeError("ray.init failed")
    assert os.environ["RAYDL_TEST_KEPT"] == "before" and "RAYDL_TEST_NEW" not in os.environ


def test_python_path_puts_the_working_directory_first_once(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/a", str(tmp_path), "/b"]))
    assert env.python_path_with_cwd().split(os.pathsep) == [str(tmp_path), "/a", "/b"]

"""Shared by every tier: nothing may reach a hub or the network at run time."""

import base64
import io
import os
import re
import shutil
import subprocess

import pytest

os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="offline")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def repo_root() -> str:
    return REPO


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray for the whole session (starting Ray costs seconds), shared by
    tests/integration and tests/reliability. Imported here, not at the top: tests/unit
    runs without Ray."""
    import ray

    from raydl.runtime import quiet_ray_data

    # 4 logical CPUs on 2 cores: 2 Train workers hold one each, Ray Data gets the rest.
    ray.init(
        address="local",
        num_cpus=4,
        object_store_memory=512 * 1024 * 1024,
        include_dashboard=False,
        log_to_driver=False,
    )
    quiet_ray_data()
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _restore_environ():
    """A test that changes environment variables cannot leak them into the next."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def images():
    """Every base64 PNG embedded in an HTML page, decoded (PIL raises on a broken one)."""

    def decode(page: str) -> list:
        from PIL import Image

        out = []
        for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
            img = Image.open(io.BytesIO(base64.b64decode(data)))
            img.load()
            out.append(img)
        return out

    return decode


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    chromium = shutil.which("chromium")
    assert chromium, "needs Debian's chromium on PATH (make setup installs it)"
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="session")
def chromium_dom():
    """The DOM of a local HTML file as headless Chromium (Debian's ``chromium``) parsed it."""

    def dump(path, tmp_path) -> str:
        return _chromium(tmp_path, "--dump-dom", f"file://{path}").stdout

    return dump


@pytest.fixture(scope="session")
def chromium_screenshot():
    """A PNG of a local HTML file as headless Chromium draws it, ``width`` x ``height``
    pixels from the top of the page; returns the PNG's path."""

    def shoot(path, tmp_path, png, width: int = 1200, height: int = 4000):
        _chromium(
            tmp_path,
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            f"file://{path}",
        )
        return png

    return shoot

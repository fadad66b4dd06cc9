"""Packaging and registration by discovery (issue 30): a family folder dropped under
``sdk/models/`` is in the built wheel, weights and numerics included, and registers its zoo entries
on import, with no edit to ``pyproject.toml``, ``setup.py`` or ``models/__init__.py``."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREE = ("sdk", "converters", "quantization", "runtimes", "setup.py", "pyproject.toml", "README.md")

TOY_FAMILY = '''"""A toy family: registers itself, nothing else edited."""
from pathlib import Path

from ...zoo import Family, ModelSpec, register_family, register_pair

FAMILY = register_family(Family(name="toyfam", builder="deepfake_sdk.models.toyfam.model:build",
                                folder=Path(__file__).resolve().parent))
register_pair(ModelSpec(name="toyfam-fp32", family="toyfam", backbone="none", weights="toy.safetensors",
                        precision="fp32"), "toy INT8")
'''


@pytest.fixture(scope="module")
def wheel_with_a_new_family(tmp_path_factory) -> Path:
    """The project tree copied, a ``toyfam`` folder added (code, weights, numerics), built as a wheel."""
    src = tmp_path_factory.mktemp("tree")
    for name in TREE:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(path, src / name)
    family = src / "sdk" / "models" / "toyfam"
    (family / "weights").mkdir(parents=True)
    (family / "numerics").mkdir()
    (family / "__init__.py").write_text(TOY_FAMILY)
    (family / "model.py").write_text("def build(spec, pretrained=True):\n    raise NotImplementedError\n")
    (family / "weights" / "toy.safetensors").write_bytes(b"\0" * 16)
    (family / "weights" / "toy.card.json").write_text("{}\n")
    (family / "numerics" / "toy.md").write_text("# toy\n")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-w", str(dist), str(src)], check=True, capture_output=True)
    (wheel,) = dist.glob("deepfake_sdk-*.whl")
    return wheel


def test_a_new_family_folder_is_packaged_with_its_data(wheel_with_a_new_family):
    names = set(zipfile.ZipFile(wheel_with_a_new_family).namelist())
    for file in ("__init__.py", "model.py", "weights/toy.safetensors", "weights/toy.card.json", "numerics/toy.md"):
        assert f"deepfake_sdk/models/toyfam/{file}" in names, f"{file} of the new family is not in the wheel"
    assert "deepfake_sdk/models/backbones/vit.py" in names and "deepfake_sdk/converters/onnx.py" in names


def test_a_new_family_folder_registers_itself_from_the_installed_wheel(wheel_with_a_new_family, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel_with_a_new_family).extractall(site)
    code = ("import deepfake_sdk, pathlib; from deepfake_sdk.zoo import get_family, get_spec, list_families; "
            "assert 'site' in pathlib.Path(deepfake_sdk.__file__).parts, deepfake_sdk.__file__; "
            "print(sorted(list_families())); print(get_spec('toyfam-int8').weights_path.is_file())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site), "PATH": ""},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    families, weights_found = out.stdout.split("\n")[:2]
    assert "toyfam" in families and "gend" in families and weights_found == "True"

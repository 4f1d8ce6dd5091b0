"""The wheel holds every module and data file the package needs, including the top-level `hub_cards/` folder
(installed as `hf_spatial.hub_cards`), and an installed, non-editable copy finds the card templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for name in ("hf_spatial", "hub_cards"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True,
    )
    return next(out.glob("hf_spatial-*.whl"))


def test_the_wheel_holds_every_module_and_the_card_templates(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "hf_spatial").rglob("*.py")}
    expected |= {f"hf_spatial/hub_cards/{p.name}" for p in (REPO_ROOT / "hub_cards").iterdir() if p.is_file()}
    assert {name for name in expected if "__pycache__" not in name} - names == set()
    assert not any(name.startswith("hub_cards/") for name in names)  # one import name: hf_spatial.hub_cards


def test_an_installed_wheel_finds_the_card_templates(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    # The unpacked wheel comes first on sys.path (before this checkout's editable install); run outside the repo.
    script = (
        "import hf_spatial, hf_spatial.hub_cards as cards\n"
        "from pathlib import Path\n"
        f"site = Path({str(tmp_path / 'site')!r})\n"
        "assert Path(hf_spatial.__file__).is_relative_to(site), hf_spatial.__file__\n"
        "assert cards.TEMPLATES.is_relative_to(site), cards.TEMPLATES\n"
        "print(sorted(p.name for p in cards.TEMPLATES.glob('*.jinja')))\n"
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "['benchmark_card.md.jinja', 'dataset_card.md.jinja', 'model_card.md.jinja']"

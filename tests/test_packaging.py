"""What a learner installs: runtime dependencies without the Jupyter stack (Colab keeps its own kernel and server),
the lab and test tools in extras; `make lab` as root; the environment check."""

import os
import subprocess
from pathlib import Path

import pytest
import tomllib

from mmcourse import doctor

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower() for r in requirements}


def test_runtime_dependencies_are_what_the_course_runs_on_and_no_jupyter_stack():
    assert _names(PROJECT["dependencies"]) == {"torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm",
                                                "safetensors"}
    assert all(">=" in r and "==" not in r for r in PROJECT["dependencies"])  # ranges, never pins


def test_the_lab_and_test_tools_are_extras_and_make_test_gets_them_all():
    extras = {k: _names(v) for k, v in PROJECT["optional-dependencies"].items()}
    assert extras["lab"] == {"jupyterlab", "jupytext", "ipykernel"}
    assert extras["lab"] | {"nbval", "nbclient", "nbformat", "pytest", "pytest-xdist"} <= extras["dev"]
    assert 'pip install -e ".[dev]"' in (ROOT / "Makefile").read_text()


def test_make_lab_adds_allow_root_exactly_for_root():
    plan = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lab = [line for line in plan.splitlines() if "jupyter lab" in line]
    assert lab and all(("--allow-root" in line) == (os.getuid() == 0) for line in lab), plan
    assert "jupyter trust" in plan


def test_doctor_reports_this_environment_as_fine():
    text, ok = doctor.report(speed_seconds=0)
    assert ok, text
    for name in ("python", "torch", "torchvision", "ipywidgets", "device", "model cache"):
        assert name in text


def test_doctor_fails_a_missing_or_too_old_package(monkeypatch):
    monkeypatch.setattr(doctor, "_installed", lambda name: None if name == "torch" else "0.1.0")
    found = {c.name: c for c in doctor.checks(speed_seconds=0)}
    assert found["torch"].status == "FAIL" and "not installed" in found["torch"].value
    assert found["ipywidgets"].status == "FAIL" and ">= 7.6" in found["ipywidgets"].why
    assert found["jupyterlab"].status == "FAIL"  # installed but too old: a real problem for the lab
    assert doctor.main(["--short"]) == 1


def test_doctor_fails_an_unwritable_cache(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(doctor, "cache_dir", lambda: blocker / "cache")
    found = {c.name: c for c in doctor.checks(speed_seconds=0)}
    assert found["model cache"].status == "FAIL" and "MMCOURSE_CACHE" in found["model cache"].why


@pytest.mark.parametrize("text, expected", [("2.14.1+cpu", (2, 14, 1)), ("8.1.9", (8, 1, 9)), ("2.9.0rc1", (2, 9, 0)),
                                            ("3.11.7", (3, 11, 7))])
def test_versions_are_read_as_numbers(text, expected):
    assert doctor._version(text) == expected


def test_github_workflow_runs_the_readme_test_command():
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "run: make test" in workflow and '"3.10"' in workflow and '"3.12"' in workflow
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_notebooks_install_the_release_they_name():
    """The setup cells and Colab links name the tag v<version>: one version for the package and the notebooks."""
    from mmcourse import __version__
    from mmcourse.dev import notebooks

    assert __version__ == PROJECT["version"]
    assert notebooks.REF == f"v{PROJECT['version']}"
    assert f"@{notebooks.REF}\"" in notebooks.SETUP_SOURCE and f"/blob/{notebooks.REF}/" in notebooks.COLAB

"""The install story stays true: pip and conda get the same packages, CI runs the README's
test command, and the code passes the linter."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def pyproject_requirements() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta["optional-dependencies"].values():
        reqs += extra
    return {_name(r): r.replace(" ", "") for r in reqs}


def conda_requirements() -> dict[str, str]:
    """The pip: list of environment.yml (no YAML library needed: the file is kept simple)."""
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip() == "- pip:")
    reqs = {}
    for ln in lines[start + 1 :]:
        item = ln.strip()
        if not item.startswith("- "):
            break
        item = item[2:].strip()
        if item != "-e .":
            reqs[_name(item)] = item.replace(" ", "")
    return reqs


def setup_torch_pin() -> str:
    """The torch version scripts/setup.sh installs by default (EDSR_LAB_TORCH unset)."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    match = re.search(r"EDSR_LAB_TORCH:-torch==([0-9][0-9.]*)\}", setup)
    assert match, "scripts/setup.sh must default EDSR_LAB_TORCH to torch==X.Y.Z"
    return match.group(1)


def test_conda_and_pip_install_the_same_packages():
    pip, conda = pyproject_requirements(), conda_requirements()
    # torch: pyproject states the range the code supports, environment.yml the tested pin
    # (checked in test_conda_pins_the_torch_that_setup_installs).
    pip.pop("torch"), conda.pop("torch")
    assert pip == conda, (
        "pyproject.toml and environment.yml list different dependencies: "
        f"only in pyproject {sorted(set(pip.items()) - set(conda.items()))}, "
        f"only in environment.yml {sorted(set(conda.items()) - set(pip.items()))}"
    )


def test_conda_pins_the_torch_that_setup_installs():
    pin = setup_torch_pin()
    assert conda_requirements()["torch"] == f"torch=={pin}"
    lower = re.fullmatch(r"torch>=([0-9.]+)", pyproject_requirements()["torch"]).group(1)
    pinned, minimum = (tuple(map(int, v.split("."))) for v in (pin, lower))
    assert pinned >= minimum, "the pinned torch must satisfy pyproject's range"
    # the CPU-only commands in both files install the same pin
    for name in ("environment.yml", "scripts/setup.sh"):
        cpu_lines = [ln for ln in (ROOT / name).read_text().splitlines() if "whl/cpu" in ln]
        assert cpu_lines, f"{name} must show the CPU-only torch command"
        for line in cpu_lines:
            assert f"torch=={pin} " in line, f"{name}: {line.strip()!r} does not pin torch {pin}"


def test_dicom_extra_is_declared_and_in_dev():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert [_name(r) for r in extras["dicom"]] == ["pydicom"]
    assert set(extras["dicom"]) <= set(extras["dev"]), "CI (the dev extra) must run DICOM tests"


def test_conda_env_is_named_and_installs_the_package():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^name: edsr-lab$", text, re.M)
    assert "python=3.11" in text and "- -e ." in text


def ci_test_command() -> str:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [ln.strip() for ln in lines if "pytest" in ln and not ln.lstrip().startswith("#")]
    assert len(commands) == 1, commands
    return commands[0]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = ci_test_command()
    assert command in readme, f"README.md must show the test command CI runs: {command}"
    top = readme.split("\n## ", 1)[0]
    assert "bash scripts/setup.sh" in top and command in top, (
        "the README's top must give the setup + test command"
    )


def test_ci_installs_cpu_torch_first():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    pinned = setup.index("torch==2.13.0")
    assert pinned < setup.index('-e ".[dev]"'), "torch must be pinned before the package pulls it"


def test_ruff_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "edsr_lab", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wheel_carries_every_file_of_the_package(tmp_path):
    """A plain (non-editable) install gets the package's data files too, e.g. ledger.json:
    build a wheel from a copy of the sources and compare its files with the package's."""
    import shutil
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    tracked = subprocess.run(
        ["git", "ls-files", "edsr_lab"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "edsr_lab/ledger.json" in tracked
    for name in tracked:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, src / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--quiet", "-w", str(tmp_path / "wheel"), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("edsr_lab-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        packed = {n for n in zf.namelist() if n.startswith("edsr_lab/")}
    assert set(tracked) <= packed, f"missing from the wheel: {sorted(set(tracked) - packed)}"

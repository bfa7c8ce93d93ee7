"""What can be tested of the image without Docker: the wheel the Dockerfile installs is built from
this tree, installs into a fresh virtual environment and both entry points start; the Dockerfile
keeps its promises (pinned base, multi-stage, nothing but the wheel in the final stage, non-root)
and .dockerignore lets through what it copies."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "python3-dev", "libc6-dev")


def stages(text: str) -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    result: dict[str, list[str]] = {}
    current = None
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
        if match:
            current = match.group(2) or match.group(1)
            result[current] = [line]
        elif current is not None:
            result[current].append(line)
    return result


def builder_context(dest: Path) -> Path:
    """The files the Dockerfile's builder copies, in a fresh directory: the wheel is built from
    them alone, and setuptools' build/ and egg-info land there, not in the checkout."""
    dest.mkdir()
    for line in stages(DOCKERFILE.read_text())["builder"]:
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                path = REPO / source
                if path.is_dir():
                    shutil.copytree(
                        path, dest / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                    )
                elif path.exists():  # README.md, once written
                    shutil.copy2(path, dest / source)
    return dest


def test_wheel_installs_and_both_entry_points_start(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    context = builder_context(tmp_path / "context")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(context),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = wheels.glob("energyd-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert {"energyd/py.typed", "adapter/py.typed", "energyd/cli.py", "adapter/cli.py"} <= set(names)
    # The adapter Deployment reads these (no --profiles): they must ship in the wheel.
    assert {"adapter/data/profiles/video.yaml", "adapter/data/profiles/nlp.yaml"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "dashboards/", "deploy/"))]
    assert "energyd = energyd.cli:main" in entry_points and "adapter = adapter.cli:main" in entry_points

    # A fresh venv holding only the wheel; its dependencies are borrowed read-only from this
    # environment through a path entry (not a site dir, so the editable install's hook stays off).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        ).stdout.strip()
    )
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    where = subprocess.run(
        [str(python), "-c", "import energyd, adapter; print(energyd.__file__); print(adapter.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: `python -c` puts the working directory on sys.path
    ).stdout.split()
    assert all(Path(p).is_relative_to(site) for p in where), where

    # The wheel's declared dependencies are all satisfied where it runs.
    check = (
        "import importlib.metadata as m; from packaging.requirements import Requirement\n"
        "bad = [str(r) for r in map(Requirement, m.requires('energyd') or [])\n"
        "       if not r.marker and m.version(r.name) not in r.specifier]\n"
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    subprocess.run([str(python), "-c", check], check=True, capture_output=True, timeout=60, cwd=tmp_path)

    for command in ("energyd", "adapter"):
        out = subprocess.run(
            [str(venv / "bin" / command), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr
        assert "run" in out.stdout, out.stdout


def test_dockerfile_is_multi_stage_pinned_and_slim() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the base image is one ARG"
    # An exact patch release of 3.11 on slim bookworm, optionally with its digest.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    found = stages(text)
    assert list(found)[:2] == ["builder", "runtime"]
    assert all(lines[0].split()[1] in ("${PYTHON_IMAGE}", "runtime") for lines in found.values())
    runtime = " ".join(found["runtime"])
    # The wheels reach the runtime through a bind mount: installed, never copied into a layer.
    assert "--mount=type=bind,from=builder" in runtime and "--no-index" in runtime
    assert "COPY" not in runtime and "apt-get" not in runtime
    assert not [tool for tool in BUILD_TOOLS if tool in runtime]
    user = re.findall(r"USER (\d+)(?::\d+)?", runtime)
    assert user and int(user[-1]) != 0
    assert "energyd --help" in runtime and "adapter --help" in runtime
    # The default target (the last stage) is the plain runtime, not the perf image.
    last_name, last = list(found.items())[-1]
    assert last[0].split()[1] == "runtime" and last_name != "perf" and len(last) == 1


def test_dockerignore_lets_through_exactly_what_the_builder_copies() -> None:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]

    def ignored(path: str) -> bool:
        # Docker's rule: the last matching pattern wins; `!` re-includes.
        result = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                result = not negate
        return result

    copied = []
    for line in stages(DOCKERFILE.read_text())["builder"]:
        if line.startswith("COPY") and "--from" not in line:
            copied.extend(line.split()[1:-1])
    assert set(copied) == {"pyproject.toml", "README.md", "energyd", "adapter"}
    assert [p for p in copied if ignored(p)] == []
    assert ignored("tests/deploy/test_image.py") and ignored(".venv/bin/python") and ignored("deploy/base")

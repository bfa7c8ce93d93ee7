"""Build the project's wheel as the Dockerfile's builder does and install one runtime set of it
(the bare package, or with extras) into a fresh virtual environment, from the package index.

`python -m tests.deploy.wheelenv` prints each runtime set's installed size: what each image adds
to its base (`make sizes`; the figures in docs/deploy.md)."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
# The runtime sets: image or use -> the requirement installed from the wheel.
RUNTIME_SETS = {
    "energyd": "",
    "adapter": "[adapter]",
    "adapter + evaluate": "[eval]",
}


def dockerfile_stages(text: str) -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined, comments dropped)."""
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


def builder_copies() -> list[str]:
    """The paths the Dockerfile's builder stage copies from the build context."""
    copied = []
    for line in dockerfile_stages(DOCKERFILE.read_text())["builder"]:
        if line.startswith("COPY") and "--from" not in line:
            copied.extend(line.split()[1:-1])
    return copied


def build_wheel(work: Path) -> Path:
    """The wheel built from exactly what the builder copies, in a fresh directory (setuptools'
    build/ and egg-info land there, not in the checkout)."""
    context, wheels = work / "context", work / "wheels"
    context.mkdir(parents=True)
    for source in builder_copies():
        path = REPO / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, context / source)
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
        timeout=300,
    )
    (wheel,) = wheels.glob("energyd-*.whl")
    return wheel


def install(wheel: Path, extras: str, venv: Path) -> Path:
    """A fresh venv (no pip of its own) holding the wheel with `extras` and their dependencies,
    installed by this interpreter's pip; returns the venv's site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{wheel}{extras}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"pip install {wheel.name}{extras} failed:\n{out.stderr[-3000:]}")
    (site,) = (venv / "lib").glob("python3*/site-packages")
    return site


def distributions(site: Path) -> set[str]:
    """Normalised names of the distributions installed in `site`."""
    return {
        re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()
        for d in importlib.metadata.distributions(path=[str(site)])
    }


def installed_bytes(site: Path) -> int:
    """Bytes of every file under site-packages: what `pip install` adds to a Python base image."""
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/energyd-install-sizes"), help="scratch folder (replaced)"
    )
    args = parser.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    wheel = build_wheel(args.work)
    print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB")
    for name, extras in RUNTIME_SETS.items():
        site = install(wheel, extras, args.work / name.replace(" ", "").replace("+", "-"))
        names = distributions(site)
        print(
            f"{name:20s} energyd{extras:10s} {installed_bytes(site) / 1e6:7.1f} MB in {len(names)} distributions"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

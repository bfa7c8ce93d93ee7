"""What can be tested of the two images without Docker: the wheel the Dockerfile installs is built
from this tree; each runtime set (energyd's, the adapter's) installs from it into a fresh virtual
environment, energyd's without any heavy package, and each service starts from its own set and
answers over HTTP; the Dockerfile keeps its promises (pinned base, one target per service, the
wheels never copied into a layer, non-root) and .dockerignore lets through what it copies."""

from __future__ import annotations

import fnmatch
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.deploy.wheelenv import REPO, build_wheel, builder_copies, distributions, dockerfile_stages, install
from tests.energyd.cgroup_trees import NodeTree
from tests.prom import free_port

DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "python3-dev", "libc6-dev")
# What a DaemonSet on every node must not carry: the solvers, the web stack, the numerics and
# plotting, the profiler's and Gurobi's packages, and anything only the tests use.
HEAVY = {
    "numpy", "scipy", "matplotlib", "highspy", "gurobipy", "torch", "pandas",
    "fastapi", "starlette", "uvicorn", "pydantic", "httpx", "tqdm", "pytest", "mypy", "hypothesis",
}  # fmt: skip
# Not even the adapter's image: evaluation, profiling, Gurobi and the test tools.
NOT_IN_ADAPTER = {"scipy", "matplotlib", "gurobipy", "torch", "tqdm", "pytest", "mypy", "hypothesis", "ruff"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_both_packages_and_their_data(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert {"energyd/py.typed", "adapter/py.typed", "energyd/cli.py", "adapter/cli.py"} <= set(names)
    # The adapter Deployment reads these (no --profiles): they must ship in the wheel.
    assert {"adapter/data/profiles/video.yaml", "adapter/data/profiles/nlp.yaml"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "dashboards/", "deploy/"))]
    assert "energyd = energyd.cli:main" in entry_points and "adapter = adapter.cli:main" in entry_points
    # Unconditional requirements are energyd's runtime set; everything else hangs off an extra.
    bare = [
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(re.split(r"[<>=; ]", line.split(":", 1)[1].strip())[0] for line in bare) == [
        "kubernetes",
        "prometheus-client",
    ]
    assert "Provides-Extra: adapter" in metadata and "Provides-Extra: eval" in metadata


@pytest.fixture(scope="module")
def energyd_site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(wheel, "", tmp_path_factory.mktemp("energyd") / "venv")


@pytest.fixture(scope="module")
def adapter_site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install(wheel, "[adapter]", tmp_path_factory.mktemp("adapter") / "venv")


def venv_bin(site: Path) -> Path:
    return site.parents[2] / "bin"


def serve(argv: list[str], cwd: Path, url: str) -> tuple[str, str]:
    """Start a service, wait until `url` answers, stop it with SIGTERM; (body, stderr)."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    body: str = response.read().decode()
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    _, err = proc.communicate(timeout=10)
                    raise AssertionError(f"{argv[0]} did not serve {url}: {err[-2000:]}") from None
                time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return body, err


def test_energyd_set_is_light_and_energyd_starts_from_it(energyd_site: Path, tmp_path: Path) -> None:
    installed = distributions(energyd_site)
    assert {"energyd", "prometheus-client", "kubernetes"} <= installed
    assert installed & HEAVY == set()
    bin_dir = venv_bin(energyd_site)
    # The installed copy runs, not the checkout (cwd is not the repository).
    version = subprocess.run(
        [str(bin_dir / "energyd"), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert version.returncode == 0 and version.stdout.strip() == "energyd 0.1.0", version
    node = NodeTree(tmp_path / "node")
    port = free_port()
    roots = node.roots
    body, _ = serve(
        [
            str(bin_dir / "energyd"),
            "run",
            "--source=estimate",
            f"--port={port}",
            "--host=127.0.0.1",
            f"--sysfs-root={roots.sysfs}",
            f"--procfs-root={roots.procfs}",
            f"--cgroup-root={roots.cgroup}",
        ],
        tmp_path,
        f"http://127.0.0.1:{port}/metrics",
    )
    assert 'energyd_build_info{version="0.1.0"}' in body or "energyd_node_energy_joules_total" in body


def test_adapter_set_has_no_evaluation_tools_and_the_adapter_starts_from_it(
    adapter_site: Path, tmp_path: Path
) -> None:
    installed = distributions(adapter_site)
    assert {"energyd", "fastapi", "uvicorn", "highspy", "numpy", "fastapi-offline"} <= installed
    assert installed & NOT_IN_ADAPTER == set()
    bin_dir = venv_bin(adapter_site)
    version = subprocess.run(
        [str(bin_dir / "adapter"), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert version.returncode == 0 and version.stdout.strip() == "adapter 0.1.0", version
    port = free_port()
    body, _ = serve(
        [str(bin_dir / "adapter"), "run", "--host=127.0.0.1", f"--port={port}", "--prometheus-url="],
        tmp_path,
        f"http://127.0.0.1:{port}/docs",
    )
    # A command whose extra is not installed says which one, instead of a traceback.
    evaluate = subprocess.run(
        [
            str(bin_dir / "adapter"),
            "evaluate",
            "--profiles",
            str(REPO / "adapter/data/profiles/video.yaml"),
            "--out",
            str(tmp_path / "ev"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert evaluate.returncode == 2 and "pip install 'energyd[eval]'" in evaluate.stderr, evaluate.stderr
    # The API docs page comes with its assets from the installed package, not from a CDN.
    assert "swagger-ui-bundle.js" in body and "http" not in body.replace(f"127.0.0.1:{port}", "")


def test_dockerfile_has_one_slim_target_per_service() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "the base image is one ARG"
    # An exact patch release of 3.11 on slim bookworm, optionally with its digest.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base.group(1))
    found = dockerfile_stages(text)
    assert list(found) == ["builder", "base", "energyd", "energyd-perf", "adapter"]
    parents = {name: lines[0].split()[1] for name, lines in found.items()}
    assert parents == {
        "builder": "${PYTHON_IMAGE}",
        "base": "${PYTHON_IMAGE}",
        "energyd": "base",
        "energyd-perf": "energyd",
        "adapter": "base",
    }
    assert "'.[adapter,gpu]'" in " ".join(found["builder"])
    for target, requirement, command in (
        ("energyd", "'energyd[gpu]'", "energyd"),
        ("adapter", "'energyd[adapter]'", "adapter"),
    ):
        stage = " ".join(found[target])
        # The wheels reach the image through a bind mount: installed, never copied into a layer.
        assert "--mount=type=bind,from=builder" in stage and "--no-index" in stage, target
        assert re.search(rf"--find-links=/wheels {re.escape(requirement)} ", stage), target
        assert "COPY" not in stage and "apt-get" not in stage, target
        assert not [tool for tool in BUILD_TOOLS if tool in stage], target
        user = re.findall(r"USER (\d+)(?::\d+)?", stage)
        assert user and int(user[-1]) != 0, target
        assert f'ENTRYPOINT ["{command}"]' in stage and f"{command} " in stage.split("RUN", 1)[1], target
    perf = " ".join(found["energyd-perf"])
    assert "linux-perf" in perf and re.findall(r"USER (\d+)", perf)[-1] != "0"


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

    copied = builder_copies()
    assert set(copied) == {"pyproject.toml", "README.md", "energyd", "adapter"}
    assert [p for p in copied if ignored(p)] == []
    assert ignored("tests/deploy/test_image.py") and ignored(".venv/bin/python") and ignored("deploy/base")


def test_make_run_installs_only_the_adapter_set() -> None:
    makefile = (REPO / "Makefile").read_text()
    run = re.search(r"^run: (.*?)##", makefile, re.MULTILINE)
    assert run and run.group(1).split() == ["$(RUN_STAMP)", "prometheus"]
    recipe = re.search(r"^\$\(RUN_STAMP\):.*?\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe and "pip install -q -e '.[adapter]'" in recipe.group(1) and "dev" not in recipe.group(1)

"""`energyd` as a user runs it: flags, errors, wiring, signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from energyd import __version__
from energyd.cli import build, config_from_args, main, parser
from energyd.config import Config
from tests.energyd.cgroup_trees import NodeTree, container_id, pod_uid
from tests.energyd.fixture_trees import set_energy, write_powercap_zone
from tests.prom import free_port


@pytest.fixture
def node(tmp_path: Path) -> NodeTree:
    tree = NodeTree(tmp_path)
    tree.cgroups.set_pod(pod_uid(1), 0)
    tree.cgroups.set_container(pod_uid(1), container_id(1), 0)
    return tree


def root_flags(node: NodeTree) -> list[str]:
    r = node.roots
    return ["--sysfs-root", str(r.sysfs), "--procfs-root", str(r.procfs), "--cgroup-root", str(r.cgroup)]


def test_help_explains_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--source",
        "--interval",
        "--port",
        "--sysfs-root",
        "--procfs-root",
        "--cgroup-root",
        "--grace-period",
        "--containers",
        "--pod-zones",
        "--http-timeout",
        "--http-max-connections",
    ):
        assert flag in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--interval", "0"], "must be > 0"),
        (["run", "--interval", "soon"], "not a number"),
        (["run", "--port", "70000"], "port must be 0..65535"),
        (["run", "--source", "rapl"], "invalid choice"),
        (["run", "--pod-zones", "some"], "invalid choice"),
        (["run", "--http-timeout", "0"], "must be > 0"),
        (["run", "--http-timeout", "301"], "at most 300"),
        (["run", "--http-max-connections", "0"], "must be 1..1024"),
        (["run", "--http-max-connections", "1e9"], "not a whole number"),
        ([], "required"),
    ],
)
def test_bad_flags_are_refused(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "bad"), [("--procfs-root", "procfs"), ("--cgroup-root", "cgroup")])
def test_unreadable_roots_are_named(
    node: NodeTree, tmp_path: Path, flag: str, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--source", "powercap", "--port", str(free_port()), *root_flags(node)]
    argv[argv.index(flag) + 1] = str(tmp_path / "missing")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("energyd: error:") and flag in err and "missing" in err


def test_an_explicit_source_that_fails_is_an_error(
    node: NodeTree, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--source", "perf", "--port", str(free_port()), *root_flags(node)]) == 2
    err = capsys.readouterr().err
    # The reason and what to do about it, as `energyd probe` would say.
    assert "--source perf" in err and "fix:" in err


def test_build_wires_a_working_daemon(node: NodeTree) -> None:
    open_before = len(os.listdir("/proc/self/fd"))
    daemon = build(Config(roots=node.roots, source="auto", host="127.0.0.1", port=0))
    try:
        daemon.step()
        node.set_energy_uj(4_000_000)
        node.set_cpu(busy_s=1.0, idle_s=1.0)
        node.cgroups.set_pod(pod_uid(1), 500_000)
        snap = daemon.step()
        assert snap.source == "powercap"
        assert snap.pod_energy_j["package-0"] == {pod_uid(1): pytest.approx(1.0)}
        assert [(s.source, s.selected) for s in snap.sources] == [("powercap", True)]
        port = daemon.serve()
        daemon.step()  # the server's own counters are rendered from the next pass on
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read()
        assert b'energyd_pod_energy_joules_total{namespace=""' in body
        assert f'energyd_build_info{{version="{__version__}"}} 1.0'.encode() in body
        assert b"energyd_http_refused_connections_total 0.0" in body
    finally:
        daemon.close()
    assert len(os.listdir("/proc/self/fd")) == open_before  # energy_uj, cgroup files, socket


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_the_daemon_cleanly(node: NodeTree, signum: int) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
    argv = [
        sys.executable,
        "-m",
        "energyd",
        "run",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--interval",
        "0.2",
    ]
    proc = subprocess.Popen([*argv, *root_flags(node)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        body = b""
        while time.monotonic() < deadline and b"energyd_pods" not in body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
                    body = resp.read()
            except OSError:
                time.sleep(0.1)
        assert b"energyd_pods 1.0" in body
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "shutting down" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_probe_prints_the_sources(node: NodeTree, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", *root_flags(node)]) == 0
    out = capsys.readouterr().out
    assert "powercap" in out and "estimate" in out


def test_a_port_in_use_is_a_clear_error(node: NodeTree, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["run", "--source", "powercap", "--host", "127.0.0.1", "--port", str(port), *root_flags(node)]
        assert main(argv) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_signal_handlers_are_restored_after_a_run(node: NodeTree) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert main(["run", "--source", "perf", "--port", str(free_port()), *root_flags(node)]) == 2
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"energyd {__version__}\n"


def exposition_after_two_steps(node: NodeTree, flags: list[str]) -> str:
    """What /metrics would serve after two passes of a daemon built from these flags."""
    daemon = build(config_from_args(parser().parse_args(["run", *flags, *root_flags(node)])))
    try:
        daemon.step()
        node.set_energy_uj(4_000_000)
        node.set_cpu(busy_s=1.0, idle_s=1.0)
        node.cgroups.set_pod(pod_uid(1), 500_000)
        node.cgroups.set_container(pod_uid(1), container_id(1), 400_000)
        snap = daemon.step()
        assert snap.pod_energy_j["package-0"] == {pod_uid(1): pytest.approx(1.0)}
        return daemon.exposition.body(gzipped=False).decode()
    finally:
        daemon.close()


@pytest.mark.parametrize(
    ("flags", "containers"), [([], False), (["--no-containers"], False), (["--containers"], True)]
)
def test_container_series_only_with_the_flag(node: NodeTree, flags: list[str], containers: bool) -> None:
    text = exposition_after_two_steps(node, flags)
    assert 'energyd_pod_energy_joules_total{namespace=""' in text
    assert ("energyd_container_energy_joules_total{" in text) is containers


def test_no_containers_is_accepted_and_warned_about(node: NodeTree, caplog: pytest.LogCaptureFixture) -> None:
    # Old manifests still start; the flag says it does nothing now. (A flag that exits 2
    # stops before the warning would be logged, so this one fails on the port instead.)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["run", "--no-containers", "--host", "127.0.0.1", "--port", str(port), *root_flags(node)]
        assert main(argv) == 2
    assert "--no-containers is deprecated and does nothing" in caplog.text


@pytest.mark.parametrize(("pod_zones", "package_per_pod"), [("node-total", False), ("all", True)])
def test_pod_zones_reaches_the_sampler(node: NodeTree, pod_zones: str, package_per_pod: bool) -> None:
    # psys is the node total: the package gets per-pod joules only with --pod-zones all.
    write_powercap_zone(node.roots.sysfs, 1, "psys", 0)
    daemon = build(Config(roots=node.roots, source="powercap", host="127.0.0.1", port=0, pod_zones=pod_zones))
    try:
        daemon.step()
        node.set_energy_uj(4_000_000)
        set_energy(node.roots.sysfs, 1, 8_000_000)
        node.set_cpu(busy_s=1.0, idle_s=1.0)
        node.cgroups.set_pod(pod_uid(1), 500_000)
        snap = daemon.step()
        assert snap.pod_energy_j["psys"] == {pod_uid(1): pytest.approx(2.0)}
        assert bool(snap.pod_energy_j["package-0"]) is package_per_pod
    finally:
        daemon.close()

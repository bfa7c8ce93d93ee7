"""`make run`: the whole stack on one machine, supervised.

Starts, in order, each in its own process group with its log in the state directory: the
stand-in cluster (a simulated pipeline behind stand-in Kubernetes endpoints, with a simulated
node tree), energyd on the real node, energyd on the simulated node (the estimate source, pods
named through the stand-in), a real Prometheus scraping all of them with
deploy/prometheus/rules.yaml, and the adapter applying its decisions to the stand-in. Each is
waited for until it answers; then the URLs, queries to paste and a curl are printed.

SIGINT, SIGTERM or SIGHUP stops every child (SIGTERM to its group, SIGKILL after a grace period) and the
orchestrator exits 0. A child that exits on its own is named with its last log lines, the rest
are stopped and the orchestrator exits 1. The state directory is emptied at start and keeps the
logs after exit; the node tree and Prometheus' data inside it are removed at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

import yaml

from adapter.profiles import default_sla_s, load_profiles
from adapter.query import ENVOY_IN_FLIGHT
from adapter.settings import TOKEN_ENV, default_profiles_dir
from adapter.sim.trace import WORKLOADS
from adapter.standin.cli import READY_PREFIX

REPO = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h
SIMULATED_NODE = "standin-node"


class StackError(Exception):
    """A child failed to start or died; the message names it and quotes its log."""


def port_or_free(preferred: int, host: str = "127.0.0.1") -> int:
    """`preferred` when nothing listens there, else a free port (another stack may be running)."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            bound: int = s.getsockname()[1]
            return bound
    raise StackError(f"no free port on {host}")


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])


class Stack:
    def __init__(self, state_dir: Path, out: TextIO = sys.stdout) -> None:
        self.state_dir = state_dir
        self.children: list[Child] = []
        self._out = out

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Child:
        log_path = self.state_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # own group: Ctrl-C reaches us only, we stop it in order
                preexec_fn=functools.partial(_die_with_parent, os.getpid())
                if sys.platform == "linux"
                else None,
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def _say(self, text: str, end: str = "\n") -> None:
        say(text, end, self._out)

    def wait_for(self, child: Child, ready: Callable[[], bool], timeout_s: float) -> None:
        started = time.monotonic()
        self._say(f"  {child.name:<17} starting ...", end="")
        while not ready():
            if child.proc.poll() is not None:
                self._say(" failed")
                raise StackError(f"{child.name} exited with {child.proc.returncode}:\n{child.tail()}")
            if time.monotonic() - started > timeout_s:
                self._say(" failed")
                raise StackError(f"{child.name} not ready after {timeout_s:g} s:\n{child.tail()}")
            time.sleep(0.2)
        self._say(f" ready in {time.monotonic() - started:.1f} s")

    def dead(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self) -> None:
        """Stops the children newest first, one at a time, so none sees a part it needs vanish
        (the adapter its Prometheus, energyd its API), each with its whole process group."""
        for child in reversed(self.children):
            started = time.monotonic()
            _signal_group(child.proc, signal.SIGTERM)
            try:
                child.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._say(f"  {child.name} ignored SIGTERM for {STOP_GRACE_S:g} s: killed")
            # Whatever the leader left in its group (energyd's perf, say) goes too.
            _signal_group(child.proc, signal.SIGKILL)
            child.proc.wait()
            self._say(f"  {child.name:<17} stopped in {time.monotonic() - started:4.1f} s")


def _die_with_parent(parent_pid: int) -> None:
    """In the child before exec: SIGTERM when the orchestrator dies, even by SIGKILL, so no
    part outlives it (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def say(text: str, end: str = "\n", out: TextIO | None = None) -> None:
    """Writes and flushes; a closed terminal or pipe must never cut the clean-up short."""
    stream = out if out is not None else sys.stdout
    try:
        stream.write(text + end)
        stream.flush()
    except (OSError, ValueError):  # EPIPE, EIO, or the stream already closed
        pass


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
        os.killpg(proc.pid, sig)


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    return check


def log_line(child: Child, prefix: str) -> Callable[[], str | None]:
    def find() -> str | None:
        for line in child.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        return None

    return find


Jobs = dict[str, list[tuple[str, dict[str, str]]]]  # job -> [(host:port, extra labels)]


def prometheus_config(scrape_interval_s: float, rules: Path, jobs: Jobs) -> str:
    # Whole milliseconds: Prometheus refuses fractional units such as "1.5s".
    interval = f"{round(scrape_interval_s * 1000)}ms"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [target], **({"labels": labels} if labels else {})}
                    for target, labels in targets
                ],
            }
            for job, targets in jobs.items()
        ],
    }
    text: str = yaml.safe_dump(config, sort_keys=False)
    return text


def start_prometheus(stack: Stack, prom_dir: Path, config: str, port: int, ready_timeout_s: float) -> str:
    """Debian's Prometheus with `config`, its data in `prom_dir`; its URL once it is ready."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise StackError(
            "prometheus is not installed: run scripts/ensure-prometheus.sh (make run and make test do)"
        )
    prom_dir.mkdir(parents=True, exist_ok=True)
    (prom_dir / "prometheus.yml").write_text(config)
    prom = stack.start(
        "prometheus",
        [binary, f"--config.file={prom_dir / 'prometheus.yml'}", f"--storage.tsdb.path={prom_dir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    stack.wait_for(prom, http_ok(f"{url}/-/ready"), ready_timeout_s)
    return url


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m adapter.standin.stack",
        description="energyd, Prometheus and the adapter on one machine, with a simulated pipeline "
        "standing in for a cluster. Ctrl-C stops everything.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--state-dir", type=Path, default=Path(".run"), help="logs and state (emptied at start)")
    p.add_argument("--profiles", type=Path, default=default_profiles_dir(), help="directory of profiles")
    p.add_argument("--pipeline", default="video", help="the pipeline to simulate and adapt")
    trace = p.add_mutually_exclusive_group()
    trace.add_argument("--workload", default="bursty", choices=sorted(WORKLOADS), help="built-in trace")
    trace.add_argument("--trace", type=Path, help="trace CSV (requests per second), looped")
    p.add_argument(
        "--rules",
        type=Path,
        default=REPO / "deploy" / "prometheus" / "rules.yaml",
        help="Prometheus rule file",
    )
    p.add_argument("--node-cpus", type=int, default=16, help="CPUs of the simulated node")
    p.add_argument("--scrape-interval", type=float, default=2.0, help="Prometheus scrape interval, s")
    p.add_argument("--adapt-interval", type=float, default=5.0, help="seconds between adapter steps")
    p.add_argument("--rate-window", type=float, default=20.0, help="the adapter's rate() window, s")
    p.add_argument("--ready-timeout", type=float, default=60.0, help="seconds each part may take to start")
    return p


def _start_all(stack: Stack, args: argparse.Namespace, token: str) -> dict[str, str]:
    """Starts every part in order, waiting for each; returns the URLs to print."""
    py = sys.executable
    state = stack.state_dir
    trace = ["--trace", str(args.trace.resolve())] if args.trace else ["--workload", args.workload]
    profiles = str(args.profiles.resolve())
    standin = stack.start(
        "standin",
        [py, "-m", "adapter.standin", "--profiles", profiles, "--pipeline", args.pipeline,
         "--state-dir", str(state / "standin"), "--node-name", SIMULATED_NODE, "--cpus", str(args.node_cpus),
         *trace],
    )  # fmt: skip
    ready = log_line(standin, READY_PREFIX)
    stack.wait_for(standin, lambda: ready() is not None, args.ready_timeout)
    info: dict[str, str] = json.loads((ready() or "").removeprefix(READY_PREFIX))
    urls = {"stand-in API": info["api"], "stand-in metrics": info["metrics"]}

    real_port, sim_port = port_or_free(9102), port_or_free(9103)
    energyd = [py, "-m", "energyd", "run", "--host", "127.0.0.1", "--interval", "1"]
    real = stack.start("energyd-real", [*energyd, "--source", "auto", "--port", str(real_port)])
    stack.wait_for(real, http_ok(f"http://127.0.0.1:{real_port}/metrics"), args.ready_timeout)
    sim = stack.start(
        "energyd-simulated",
        [*energyd, "--source", "estimate", "--port", str(sim_port),
         "--procfs-root", info["procfs"], "--cgroup-root", info["cgroup"]],
        env={"NODE_NAME": SIMULATED_NODE, "KUBECONFIG": info["kubeconfig"]},
    )  # fmt: skip
    stack.wait_for(sim, http_ok(f"http://127.0.0.1:{sim_port}/metrics"), args.ready_timeout)
    urls["energyd (this machine)"] = f"http://127.0.0.1:{real_port}/metrics"
    urls["energyd (simulated node)"] = f"http://127.0.0.1:{sim_port}/metrics"

    prom_port, adapter_port = port_or_free(9090), port_or_free(8080)
    config = prometheus_config(
        args.scrape_interval,
        args.rules.resolve(),
        {
            "energyd": [
                (f"127.0.0.1:{real_port}", {"node": "this-machine"}),
                (f"127.0.0.1:{sim_port}", {"node": SIMULATED_NODE}),
            ],
            "standin": [(info["metrics"].split("/")[2], {})],
            "adapter": [(f"127.0.0.1:{adapter_port}", {})],
        },
    )
    prom_url = start_prometheus(stack, state / "prometheus", config, prom_port, args.ready_timeout)
    urls["Prometheus"] = prom_url

    adapter = stack.start(
        "adapter",
        [py, "-m", "adapter", "run", "--host", "127.0.0.1", "--port", str(adapter_port),
         "--profiles", profiles, "--pipeline", args.pipeline, "--prometheus-url", prom_url, "--apply",
         "--kubeconfig", info["kubeconfig"], "--namespace", info["namespace"],
         "--interval", f"{args.adapt_interval:g}", "--rate-window", f"{args.rate_window:g}",
         "--backlog-metric", ENVOY_IN_FLIGHT],
        env={TOKEN_ENV: token},
    )  # fmt: skip
    adapter_url = f"http://127.0.0.1:{adapter_port}"
    stack.wait_for(adapter, http_ok(f"{adapter_url}/healthz"), args.ready_timeout)
    urls["adapter API docs"] = f"{adapter_url}/docs"
    return urls


def _instructions(urls: dict[str, str], pipeline: str, sla_s: float, token: str, state_dir: Path) -> str:
    prom = urls["Prometheus"]
    adapter = urls["adapter API docs"].removesuffix("/docs")
    queries = [
        ("watts per simulated pod (estimate)", f'sum by (pod) (rate(energyd_pod_energy_joules_total{{node="{SIMULATED_NODE}", node_total="true"}}[1m]))'),
        ("watts per zone, this machine", 'rate(energyd_node_energy_joules_total{node="this-machine"}[1m])'),
        ("adapter decisions per minute", "sum by (pipeline) (rate(adapter_decisions_total[1m])) * 60"),
        ("replicas in force per stage", "adapter_stage_replicas"),
        ("requests served per second", f'sum(rate(seldon_api_executor_server_requests_seconds_count{{deployment_name="{pipeline}"}}[1m]))'),
    ]  # fmt: skip
    lines = ["", "Services:"]
    lines += [f"  {name:<26} {url}" for name, url in urls.items()]
    lines += [
        "",
        f"SLA of {pipeline}: {sla_s:.3g} s end to end (docs/adapter.md, 'SLA'; exported as adapter_sla_seconds)",
        f'  # p99 latency against it: histogram_quantile(0.99, sum by (le) (rate(seldon_api_executor_server_requests_seconds_bucket{{deployment_name="{pipeline}"}}[1m])))',
    ]
    lines += ["", f"Queries (paste into {prom}/graph):"]
    lines += [f"  # {what}\n  {q}" for what, q in queries]
    body = f'{{"pipeline": "{pipeline}", "sla_s": {sla_s:.6g}, "arrival_rate_rps": 20}}'
    lines += [
        "",
        'Ask the adapter (what-if; add "apply": true to apply it):',
        f"  curl -s -X POST {adapter}/decide -H 'Content-Type: application/json' \\",
        f"    -H 'Authorization: Bearer {token}' -d '{body}'",
        "",
        f"Logs: {state_dir}/*.log    Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    stack = Stack(state_dir)
    stopping: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    # SIGHUP too: a closed terminal must not leave the children running.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    token = secrets.token_urlsafe(18)
    status = 0
    try:
        say(f"Starting (logs in {state_dir}):")
        urls = _start_all(stack, args, token)
        sla_s = default_sla_s(load_profiles(args.profiles)[args.pipeline])
        say(_instructions(urls, args.pipeline, sla_s, token, state_dir))
        while (dead := stack.dead()) is None:
            time.sleep(0.5)
        raise StackError(f"{dead.name} exited with {dead.proc.returncode}:\n{dead.tail()}")
    except StackError as err:
        say(f"\nstack: {err}\nstopping the rest.", out=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        say(f"\n{stopping[0] if stopping else 'SIGINT'}: stopping every process.")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # nor may a second Ctrl-C
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        for scratch in (state_dir / "standin" / "node", state_dir / "prometheus" / "data"):
            shutil.rmtree(scratch, ignore_errors=True)
        say(f"Stopped. Logs kept in {state_dir}.")
    return status


if __name__ == "__main__":
    sys.exit(main())

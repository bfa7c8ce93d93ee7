"""RAPL energy through the perf `power` PMU, for hosts where powercap is absent or locked.

One long-running ``perf stat -a -I <ms> -x, -e power/energy-pkg/,...`` (only the events the
kernel lists under <sysfs>/bus/event_source/devices/power/events) prints, every interval, the
joules of each event over that interval; a reader thread parses its CSV as it streams (perf
writes it to stderr) and adds it up into cumulative µJ per zone. The kernel extends the RAPL
counters to 64 bits for perf, so these never wrap (max_energy_range_uj None).

perf aggregates an event over the sockets (``-a`` without ``--per-socket``), so the zones are
``package`` (all packages), ``dram``, ``core``, ``gpu`` and ``psys``, not per socket. core and
gpu are inside package; psys, when listed, is the node total alone (package and dram are
`covered_by` it). perf runs with LC_ALL=C, so that its CSV has decimal points in any locale.

A perf whose every event reads 0 J over its first interval counts nothing (a VM's virtual PMU:
this project's Firecracker build VM lists energy-psys and reads 0.00 J forever) and is refused,
so that `auto` moves on to the estimate rather than export 0 W as measured.
An interval perf could not count (``<not counted>``) adds nothing; an event perf never counted
(``<not supported>``) has no zone in read_uj. If perf dies it is restarted with exponential
back-off; the energy of the gap is lost (a new perf starts from zero, and the cumulative values
carry on from where they were). While no sample has come for three intervals, read_uj raises,
so the sampler counts a read error rather than a quiet interval of zero watts, and a perf that
is alive but silent is terminated, so that it is restarted.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from energyd.sources.base import Skipped, SourceError, Zone

log = logging.getLogger(__name__)

# Event -> zone, in the order the zones are listed.
EVENT_ZONES = {
    "energy-pkg": "package",
    "energy-ram": "dram",
    "energy-cores": "core",
    "energy-gpu": "gpu",
    "energy-psys": "psys",
}
INSIDE_PACKAGE = frozenset({"core", "gpu"})
UNCOUNTED = ("<not supported>", "<not counted>")
UJ_PER_J = 1_000_000
TAIL_LINES = 3
# Over this long every real RAPL domain counts something (perf prints joules to 0.01 J): 0 J on
# every event means a PMU that does not count (a VM's, whose psys reads 0.00 forever).
ZERO_MEANS_DEAD_MS = 100

PERMISSION_FIX = (
    "run energyd as root or with CAP_PERFMON (Linux 5.8+; the perf overlay in deploy/overlays/perf adds it), "
    "or lower kernel.perf_event_paranoid to 0 on the host"
)


def power_events(sysfs_root: Path) -> list[str]:
    """The RAPL events the kernel lists, in EVENT_ZONES order. Raises SourceError when there are none."""
    pmu = sysfs_root / "bus" / "event_source" / "devices" / "power"
    events_dir = pmu / "events"
    if pmu.is_symlink() and not pmu.exists():
        raise SourceError(
            f"{pmu} links to {os.readlink(pmu)}, which is not there (only bus/event_source was mounted)",
            "mount the host's /sys/devices read-only beside /sys/bus/event_source, as deploy/base/energyd "
            "and deploy/overlays/perf do",
        )
    if not events_dir.is_dir():
        raise SourceError(
            f"{events_dir} does not exist: the kernel has no RAPL perf PMU here (a VM, or a kernel "
            "without CONFIG_PERF_EVENTS_INTEL_RAPL)",
            "on bare metal: a kernel with the RAPL perf driver (CONFIG_PERF_EVENTS_INTEL_RAPL, Intel and AMD "
            "Zen) and the host's /sys/bus/event_source and /sys/devices mounted into the container (deploy/overlays/"
            "perf); a VM has no RAPL PMU",
        )
    listed = {p.name for p in events_dir.iterdir()}
    events = [e for e in EVENT_ZONES if e in listed]
    if not events:
        raise SourceError(
            f"{events_dir} lists no energy-* events", "a CPU whose RAPL perf driver exposes them"
        )
    return events


def zones_for(events: Sequence[str]) -> dict[str, Zone]:
    has_psys = "energy-psys" in events
    zones: dict[str, Zone] = {}
    for event in events:
        name = EVENT_ZONES[event]
        if name in INSIDE_PACKAGE:
            zones[event] = Zone(name, "package", False, None)
        elif has_psys and name != "psys":
            zones[event] = Zone(name, None, False, None, covered_by="psys")
        else:
            zones[event] = Zone(name, None, True, None)
    return zones


def parse_line(line: str) -> tuple[str, float | None] | None:
    """(event, joules) of one `perf stat -I -x,` line; joules None when perf could not count it.

    None for lines that are not samples (blank, comments, perf's messages).
    """
    fields = line.strip().split(",")
    if len(fields) < 4:
        return None
    value, unit, event = fields[1], fields[2], fields[3]
    event = event.removeprefix("power/").removesuffix("/")
    if event not in EVENT_ZONES:
        return None
    if value in UNCOUNTED:
        return event, None
    try:
        joules = float(value)
    except ValueError:
        return None
    if unit != "Joules":
        log.debug("perf reports %s in %r, expected Joules", event, unit)
    return event, joules


class PerfSource:
    name = "perf"
    measured = True

    def __init__(
        self,
        sysfs_root: Path = Path("/sys"),
        *,
        interval_s: float = 1.0,
        perf_command: Sequence[str] = ("perf",),
        clock: Callable[[], float] = time.monotonic,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        events = power_events(sysfs_root)
        if shutil.which(perf_command[0]) is None:
            raise SourceError(
                f"the perf command {perf_command[0]!r} is not installed",
                "install perf (Debian: apt install linux-perf; Ubuntu: linux-tools-$(uname -r)), or use the "
                "energyd image's perf target",
            )
        self._zones = zones_for(events)
        interval_ms = max(10, round(interval_s * 1000))
        self._stale_s = 3 * interval_s + 1.0
        self._args = [*perf_command, "stat", "-a", "-I", str(interval_ms), "-x", ","]
        self._args += ["-e", ",".join(f"power/{e}/" for e in events)]
        self._clock = clock
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._total_uj: dict[str, int] = {}
        self._uncounted: set[str] = set()
        self._not_counted = 0  # intervals perf printed <not counted>/<not supported> for an event
        self._seen: set[str] = set()
        self._last_sample_s: float | None = None
        self._started_s = clock()
        self._tail: list[str] = []  # perf's first messages of its current run: the error comes first
        self._closing = threading.Event()
        self._first = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self.restarts = 0
        self._thread = threading.Thread(target=self._run, name="perf-stat-reader", daemon=True)
        self._thread.start()
        if not self._first.wait(timeout=2 * interval_s + 5.0) or not self._total_uj:
            tail = " | ".join(self._tail) or "no output"
            self.close()
            raise SourceError(f"`{' '.join(self._args)}` gave no energy sample: {tail}", _fix_for(tail))
        with self._lock:
            counted_nothing = not any(self._total_uj.values())
        if counted_nothing and interval_ms >= ZERO_MEANS_DEAD_MS:
            self.close()
            raise SourceError(
                f"perf's RAPL events count nothing here: {', '.join(events)} read 0 J over a whole "
                f"{interval_ms} ms interval (a virtual PMU, as on Firecracker VMs, or disabled counters)",
                "on bare metal use powercap; here the estimate is what is left",
            )

    def zones(self) -> Sequence[Zone]:
        return list(self._zones.values())

    def read_uj(self) -> Mapping[Zone, int]:
        with self._lock:
            # A perf just (re)started has had no time to print yet: staleness counts from its start.
            last = max(self._last_sample_s or 0.0, self._started_s)
            totals = {self._zones[e]: uj for e, uj in self._total_uj.items()}
            proc = self._proc
        if self._clock() - last > self._stale_s:
            if proc is not None and proc.poll() is None:
                proc.terminate()  # alive but silent (hung): the reader thread starts a new one
            raise SourceError(f"perf has given no sample for over {self._stale_s:.3g} s (restarting it)")
        if not totals:
            raise SourceError(f"perf has counted none of {', '.join(self._zones)} yet")
        return totals

    def read_from(self) -> Mapping[str, str]:
        return {zone.name: f"perf event power/{event}/" for event, zone in self._zones.items()}

    def skipped(self) -> Sequence[Skipped]:
        with self._lock:
            uncounted = sorted(self._uncounted)
        why = "perf printed <not counted> or <not supported> for its last interval"
        return [
            Skipped(f"power/{e}/", "not_counted", f"perf event power/{e}/: {why}", True) for e in uncounted
        ]

    def read_errors(self) -> Mapping[str, int]:
        with self._lock:
            return {"not_counted": self._not_counted} if self._not_counted else {}

    def close(self) -> None:
        with self._lock:
            self._closing.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        backoff_s = self._backoff_s
        while True:
            with self._lock:
                if self._closing.is_set():
                    break
                try:
                    proc = subprocess.Popen(
                        self._args,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                        bufsize=1,
                        # perf prints numbers in the caller's locale: under de_DE `408,09`
                        # inside `-x,` CSV. C keeps the decimal point whatever the node says.
                        env={**os.environ, "LC_ALL": "C"},
                    )
                except OSError as err:
                    self._tail.append(str(err))
                    self._first.set()
                    break
                self._proc = proc
                self._started_s = self._clock()
                self._tail.clear()
            with proc:
                assert proc.stderr is not None  # piped above
                sampled = False
                for line in proc.stderr:
                    sampled |= self._take(line)
            rc = proc.returncode
            if self._closing.is_set() or not self._first.is_set():
                self._first.set()  # perf failed before its first sample: the constructor reports it
                break
            if sampled:
                backoff_s = self._backoff_s
            log.warning(
                "perf exited (status %s: %s); restarting in %.3g s", rc, " | ".join(self._tail), backoff_s
            )
            if self._closing.wait(backoff_s):
                break
            backoff_s = min(2 * backoff_s, self._max_backoff_s)
            self.restarts += 1

    def _take(self, line: str) -> bool:
        parsed = parse_line(line)
        if parsed is None:
            if line.strip() and len(self._tail) < TAIL_LINES:
                self._tail.append(line.strip())
            return False
        event, joules = parsed
        with self._lock:
            self._last_sample_s = self._clock()
            if joules is None:
                self._not_counted += 1
                if event not in self._uncounted:
                    log.warning("perf cannot count %s: %s", event, line.strip())
                    if len(self._tail) < TAIL_LINES:
                        self._tail.append(line.strip())
                self._uncounted.add(event)
            else:
                self._uncounted.discard(event)
                self._total_uj[event] = self._total_uj.get(event, 0) + round(joules * UJ_PER_J)
        self._seen.add(event)
        if self._seen.issuperset(self._zones):
            self._first.set()  # every event has reported once: the constructor may return
        return True


def _fix_for(perf_output: str) -> str:
    text = perf_output.lower()
    if "paranoid" in text or "permission" in text or "access to performance monitoring" in text:
        return PERMISSION_FIX
    if "event syntax error" in text or "not supported" in text or "unknown" in text:
        return "this CPU's RAPL perf events cannot be opened system-wide here: use powercap or the estimate"
    return "run the perf command above by hand to see why"

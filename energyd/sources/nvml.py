"""Every NVML call energyd and the profiler make, behind one small interface (`Nvml`).

Three implementations: `PynvmlNvml`, NVIDIA's binding (`nvidia-ml-py`, imported lazily: the
optional `gpu` extra); `ReplayNvml`, which answers from a recording (JSON, the format below), so
that tests and benchmarks run the production code without a GPU; and `RecordingNvml`, which
wraps a real one and writes what it answered in that format (scripts/gpu-measure.sh).

Errors come out as `NvmlError(kind)`, one kind per NVML error energyd tells apart (pynvml's
exception classes map to them by name, see NVML_ERROR_KINDS). Answers are external input: every
number is bounded and every string cut, naming the field when one is refused.

Recording format (``energyd-nvml-replay/1``)::

    {"format": "energyd-nvml-replay/1", "recorded_on": "...",
     "answers": {"init": [null], "driver_version": ["580.159.04"], "device_count": [1],
                 "device/0": [{"uuid": "GPU-...", "name": "NVIDIA H200", "mig_enabled": false}],
                 "total_energy_mj/0": [1000, 1410, {"error": "gpu_lost"}], ...}}

Each key is a call (with the device index after "/"); its list is answered in order, the last
answer repeating once the list is used up; `{"error": KIND}` raises. A call the recording never
answered raises `not_supported`, as NVML does for a function a GPU lacks.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

FORMAT = "energyd-nvml-replay/1"
MAX_DEVICES = 64
MAX_PROCESSES = 4096  # per GPU and call: more is refused rather than looped over
MAX_TEXT = 96
MAX_ENERGY_MJ = 2**64 - 1
MAX_RECORDING_BYTES = 16 * 2**20

# pynvml exception class -> the kind energyd handles. Any other NVMLError is "unknown".
NVML_ERROR_KINDS = {
    "NVMLError_LibraryNotFound": "library_not_found",
    "NVMLError_DriverNotLoaded": "driver_not_loaded",
    "NVMLError_GpuIsLost": "gpu_lost",
    "NVMLError_ResetRequired": "gpu_lost",
    "NVMLError_NotSupported": "not_supported",
    "NVMLError_FunctionNotFound": "not_supported",  # a driver older than the call
    "NVMLError_NoPermission": "no_permission",
    "NVMLError_NotFound": "not_found",
    "NVMLError_NoData": "not_found",
    "NVMLError_LibRmVersionMismatch": "version_mismatch",
}
ERROR_KINDS = frozenset(
    {*NVML_ERROR_KINDS.values(), "module_not_found", "uninitialized", "invalid_answer", "unknown"}
)

# What each kind means on a node, and what to do about it (energyd probe prints both).
REASONS = {
    "module_not_found": (
        "the NVML binding is not installed (Python module pynvml)",
        "pip install 'energyd[gpu]' (nvidia-ml-py); the GPU image has it",
    ),
    "library_not_found": (
        "no NVIDIA driver here: libnvidia-ml.so.1 was not found",
        "on a GPU node, run energyd with the NVIDIA container runtime (deploy/overlays/gpu: "
        "NVIDIA_DRIVER_CAPABILITIES=utility mounts the library); nodes without GPUs need nothing",
    ),
    "driver_not_loaded": (
        "the NVIDIA kernel driver is not loaded",
        "load it (modprobe nvidia) or check dmesg; nvidia-smi must work on the node",
    ),
    "version_mismatch": (
        "the NVML library and the loaded kernel driver differ in version",
        "reboot the node or reload the driver after a driver upgrade",
    ),
    "no_permission": ("NVML refused the call (insufficient permissions)", "run energyd as root (uid 0)"),
    "gpu_lost": (
        "the GPU fell off the bus (NVML: GPU is lost)",
        "check dmesg for Xid 79; the GPU needs a reset",
    ),
    "not_supported": (
        "the GPU has no energy counter (nvmlDeviceGetTotalEnergyConsumption needs Volta or later)",
        "",
    ),
}


class NvmlError(Exception):
    """An NVML call failed; `kind` is one of ERROR_KINDS."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Device:
    index: int
    uuid: str
    name: str
    mig_enabled: bool


@dataclass(frozen=True)
class ProcessSample:
    """One of NVML's per-process utilisation samples: the SM busy percent over a sample period."""

    pid: int
    timestamp_us: int
    sm_util_pct: int


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    used_bytes: int | None  # None: NVML could not say (it reports N/A)


@dataclass(frozen=True)
class AccountingEntry:
    """Accounting stats of one process: busy percent over its life and how long it has had a context."""

    pid: int
    gpu_util_pct: int
    time_ms: int
    running: bool


@dataclass(frozen=True)
class Clocks:
    sm_max_mhz: int | None
    sm_app_mhz: int | None
    sm_app_default_mhz: int | None
    persistence: bool | None


class Nvml(Protocol):
    """What energyd asks NVML. Every method raises NvmlError."""

    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str: ...
    def device_count(self) -> int: ...
    def device(self, index: int) -> Device: ...
    def total_energy_mj(self, index: int) -> int: ...
    def process_samples(self, index: int, since_us: int) -> list[ProcessSample]:
        """Samples newer than `since_us` (NVML's own timestamps); [] when there are none."""
        ...

    def accounting(self, index: int) -> list[AccountingEntry]:
        """Raises NvmlError("not_supported") when accounting mode is off."""
        ...

    def compute_processes(self, index: int) -> list[ProcessMemory]: ...
    def utilization_pct(self, index: int) -> int: ...
    def clocks(self, index: int) -> Clocks: ...


def bounded_int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise NvmlError("invalid_answer", f"{field}: expected an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise NvmlError("invalid_answer", f"{field}: {value} is outside [{low}, {high}]")
    return value


def _text(value: object, field: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise NvmlError("invalid_answer", f"{field}: expected text, got {type(value).__name__}")
    return "".join(c for c in value if c.isprintable())[:MAX_TEXT]


def _listed(items: object, field: str) -> list[Any]:
    if not isinstance(items, list):
        raise NvmlError("invalid_answer", f"{field}: expected a list, got {type(items).__name__}")
    if len(items) > MAX_PROCESSES:
        raise NvmlError("invalid_answer", f"{field}: {len(items)} entries, more than {MAX_PROCESSES}")
    return items


def _optional_mhz(value: object, field: str) -> int | None:
    return None if value is None else bounded_int(value, field, 0, 100_000)


def _pct(value: object, field: str) -> int:
    # NVML reports percents; a value past 100 is clamped rather than refused (seen on some boards).
    return min(bounded_int(value, field, 0, 2**32 - 1), 100)


def _pid(value: object, field: str) -> int:
    return bounded_int(value, field, 0, 2**31 - 1)


# ---- The real binding ----


class PynvmlNvml:
    """NVIDIA's binding. `pynvml` is imported by init(), so nodes without the extra import nothing.

    `module` stands in for pynvml (tests hand in an object with pynvml's exception classes and
    functions that answer as pynvml's do); None imports the real one.
    """

    def __init__(self, module: Any = None) -> None:
        self._module = module
        self._nv: Any = None
        self._handles: dict[int, Any] = {}

    def _call(self, fn: str, *args: Any) -> Any:
        if self._nv is None:
            raise NvmlError("uninitialized", f"{fn} before init")
        try:
            return getattr(self._nv, fn)(*args)
        except self._nv.NVMLError as err:
            kind = NVML_ERROR_KINDS.get(type(err).__name__, "unknown")
            if getattr(err, "value", None) == 0:
                # pynvml raises NVMLError(NVML_SUCCESS) where a size query found nothing to
                # return (nvmlDeviceGetProcessUtilization with no process): no data, not a fault.
                kind = "not_found"
            raise NvmlError(kind, f"{fn}: {err}") from err
        except self._nv.NVMLLibraryMismatchError as err:
            # pynvml's unversioned wrappers call the newest version of a function; a driver
            # older than the binding lacks it.
            raise NvmlError("not_supported", f"{fn}: {err}") from err

    def _handle(self, index: int) -> Any:
        handle = self._handles.get(index)
        if handle is None:
            handle = self._handles[index] = self._call("nvmlDeviceGetHandleByIndex", index)
        return handle

    def init(self) -> None:
        nv: Any = self._module
        if nv is None:
            try:
                nv = importlib.import_module("pynvml")
            except ModuleNotFoundError as err:
                raise NvmlError("module_not_found", str(err)) from err
        self._nv = nv
        try:
            self._call("nvmlInit")
        except NvmlError:
            self._nv = None
            raise

    def shutdown(self) -> None:
        if self._nv is not None:
            self._handles.clear()
            self._call("nvmlShutdown")
            self._nv = None

    def driver_version(self) -> str:
        return _text(self._call("nvmlSystemGetDriverVersion"), "driver_version")

    def device_count(self) -> int:
        return bounded_int(self._call("nvmlDeviceGetCount"), "device_count", 0, MAX_DEVICES)

    def device(self, index: int) -> Device:
        h = self._handle(index)
        try:
            mig = self._call("nvmlDeviceGetMigMode", h)[0] == self._nv.NVML_DEVICE_MIG_ENABLE
        except NvmlError as err:
            if err.kind != "not_supported":
                raise
            mig = False  # pre-Ampere GPUs have no MIG
        return Device(
            index,
            _text(self._call("nvmlDeviceGetUUID", h), "uuid"),
            _text(self._call("nvmlDeviceGetName", h), "name"),
            mig,
        )

    def total_energy_mj(self, index: int) -> int:
        value = self._call("nvmlDeviceGetTotalEnergyConsumption", self._handle(index))
        return bounded_int(value, "total_energy_mj", 0, MAX_ENERGY_MJ)

    def process_samples(self, index: int, since_us: int) -> list[ProcessSample]:
        try:
            raw = self._call("nvmlDeviceGetProcessUtilization", self._handle(index), since_us)
        except NvmlError as err:
            if err.kind == "not_found":  # NVML's answer when no sample is newer than since_us
                return []
            raise
        return [
            ProcessSample(
                _pid(s.pid, "pid"),
                bounded_int(s.timeStamp, "timestamp_us", 0, 2**63 - 1),
                _pct(s.smUtil, "sm_util_pct"),
            )
            for s in _listed(list(raw), "process_samples")
        ]

    def accounting(self, index: int) -> list[AccountingEntry]:
        h = self._handle(index)
        if self._call("nvmlDeviceGetAccountingMode", h) != self._nv.NVML_FEATURE_ENABLED:
            raise NvmlError("not_supported", "accounting mode is off (nvidia-smi -am 1 turns it on)")
        entries = []
        for pid in _listed(self._call("nvmlDeviceGetAccountingPids", h), "accounting_pids"):
            try:
                stats = self._call("nvmlDeviceGetAccountingStats", h, pid)
            except NvmlError as err:
                if err.kind == "not_found":  # left the accounting buffer meanwhile
                    continue
                raise
            entries.append(
                AccountingEntry(
                    _pid(pid, "pid"),
                    _pct(stats.gpuUtilization, "gpu_util_pct"),
                    bounded_int(stats.time, "time_ms", 0, 2**63 - 1),
                    bool(stats.isRunning),
                )
            )
        return entries

    def compute_processes(self, index: int) -> list[ProcessMemory]:
        raw = self._call("nvmlDeviceGetComputeRunningProcesses", self._handle(index))
        return [
            ProcessMemory(
                _pid(p.pid, "pid"),
                None if p.usedGpuMemory is None else bounded_int(p.usedGpuMemory, "used_bytes", 0, 2**63),
            )
            for p in _listed(list(raw), "compute_processes")
        ]

    def utilization_pct(self, index: int) -> int:
        return _pct(self._call("nvmlDeviceGetUtilizationRates", self._handle(index)).gpu, "utilization_pct")

    def clocks(self, index: int) -> Clocks:
        h, nv = self._handle(index), self._nv

        def optional(fn: str, *args: Any) -> Any:
            try:
                return self._call(fn, h, *args)
            except NvmlError as err:
                if err.kind in ("not_supported", "no_permission"):
                    return None
                raise

        persistence = optional("nvmlDeviceGetPersistenceMode")
        return Clocks(
            _optional_mhz(optional("nvmlDeviceGetMaxClockInfo", nv.NVML_CLOCK_SM), "sm_max_mhz"),
            _optional_mhz(
                optional("nvmlDeviceGetClock", nv.NVML_CLOCK_SM, nv.NVML_CLOCK_ID_APP_CLOCK_TARGET),
                "sm_app_mhz",
            ),
            _optional_mhz(
                optional("nvmlDeviceGetClock", nv.NVML_CLOCK_SM, nv.NVML_CLOCK_ID_APP_CLOCK_DEFAULT),
                "sm_app_default_mhz",
            ),
            None if persistence is None else persistence == nv.NVML_FEATURE_ENABLED,
        )


# Every pynvml name PynvmlNvml uses: tests check that the installed binding has them all.
PYNVML_NAMES = (
    "NVMLError",
    "NVMLLibraryMismatchError",
    *NVML_ERROR_KINDS,
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetMigMode",
    "NVML_DEVICE_MIG_ENABLE",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetName",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetProcessUtilization",
    "nvmlDeviceGetAccountingMode",
    "NVML_FEATURE_ENABLED",
    "nvmlDeviceGetAccountingPids",
    "nvmlDeviceGetAccountingStats",
    "nvmlDeviceGetComputeRunningProcesses",
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetPersistenceMode",
    "nvmlDeviceGetMaxClockInfo",
    "nvmlDeviceGetClock",
    "NVML_CLOCK_SM",
    "NVML_CLOCK_ID_APP_CLOCK_TARGET",
    "NVML_CLOCK_ID_APP_CLOCK_DEFAULT",
)


# ---- Replay and record ----


def _answer_to_json(value: object) -> object:
    if isinstance(value, list):
        return [_answer_to_json(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        data = asdict(value)  # type: ignore[call-overload]
        data.pop("index", None)  # the key says which device
        return data
    return value


class ReplayNvml:
    """Answers from a recording (see the module docstring), through the same bounds as the real one."""

    def __init__(self, recording: dict[str, Any], source: str = "<recording>") -> None:
        if recording.get("format") != FORMAT:
            raise ValueError(f"{source}: format must be {FORMAT!r}, got {recording.get('format')!r}")
        answers = recording.get("answers")
        if not isinstance(answers, dict) or not all(isinstance(v, list) and v for v in answers.values()):
            raise ValueError(f"{source}: answers must map each call to a non-empty list")
        self.recorded_on = str(recording.get("recorded_on", ""))
        self._answers: dict[str, list[Any]] = answers
        self._next: dict[str, int] = {}

    @classmethod
    def load(cls, path: Path) -> ReplayNvml:
        if path.stat().st_size > MAX_RECORDING_BYTES:
            raise ValueError(f"{path}: larger than {MAX_RECORDING_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: not a JSON object")
        return cls(data, str(path))

    def _answer(self, key: str) -> Any:
        queue = self._answers.get(key)
        if queue is None:
            raise NvmlError("not_supported", f"{key}: not in the recording")
        i = self._next.get(key, 0)
        self._next[key] = i + 1
        value = queue[min(i, len(queue) - 1)]
        if isinstance(value, dict) and set(value) == {"error"}:
            kind = value["error"]
            raise NvmlError(kind if kind in ERROR_KINDS else "unknown", f"{key} (replayed)")
        return value

    def _record(self, key: str, field: str) -> dict[str, Any]:
        value = self._answer(key)
        if not isinstance(value, dict):
            raise NvmlError("invalid_answer", f"{field}: expected an object, got {type(value).__name__}")
        return value

    def init(self) -> None:
        self._answer("init")

    def shutdown(self) -> None:
        self._answers.setdefault("shutdown", [None])
        self._answer("shutdown")

    def driver_version(self) -> str:
        return _text(self._answer("driver_version"), "driver_version")

    def device_count(self) -> int:
        return bounded_int(self._answer("device_count"), "device_count", 0, MAX_DEVICES)

    def device(self, index: int) -> Device:
        d = self._record(f"device/{index}", "device")
        return Device(
            index, _text(d.get("uuid"), "uuid"), _text(d.get("name"), "name"), d.get("mig_enabled") is True
        )

    def total_energy_mj(self, index: int) -> int:
        return bounded_int(self._answer(f"total_energy_mj/{index}"), "total_energy_mj", 0, MAX_ENERGY_MJ)

    def process_samples(self, index: int, since_us: int) -> list[ProcessSample]:
        samples = [
            ProcessSample(
                _pid(s.get("pid"), "pid"),
                bounded_int(s.get("timestamp_us"), "timestamp_us", 0, 2**63 - 1),
                _pct(s.get("sm_util_pct"), "sm_util_pct"),
            )
            for s in _listed(self._answer(f"process_samples/{index}"), "process_samples")
            if isinstance(s, dict)
        ]
        return [s for s in samples if s.timestamp_us > since_us]

    def accounting(self, index: int) -> list[AccountingEntry]:
        return [
            AccountingEntry(
                _pid(a.get("pid"), "pid"),
                _pct(a.get("gpu_util_pct"), "gpu_util_pct"),
                bounded_int(a.get("time_ms"), "time_ms", 0, 2**63 - 1),
                a.get("running") is True,
            )
            for a in _listed(self._answer(f"accounting/{index}"), "accounting")
            if isinstance(a, dict)
        ]

    def compute_processes(self, index: int) -> list[ProcessMemory]:
        return [
            ProcessMemory(
                _pid(p.get("pid"), "pid"),
                None
                if p.get("used_bytes") is None
                else bounded_int(p.get("used_bytes"), "used_bytes", 0, 2**63),
            )
            for p in _listed(self._answer(f"compute_processes/{index}"), "compute_processes")
            if isinstance(p, dict)
        ]

    def utilization_pct(self, index: int) -> int:
        return _pct(self._answer(f"utilization_pct/{index}"), "utilization_pct")

    def clocks(self, index: int) -> Clocks:
        c = self._record(f"clocks/{index}", "clocks")
        persistence = c.get("persistence")
        return Clocks(
            _optional_mhz(c.get("sm_max_mhz"), "sm_max_mhz"),
            _optional_mhz(c.get("sm_app_mhz"), "sm_app_mhz"),
            _optional_mhz(c.get("sm_app_default_mhz"), "sm_app_default_mhz"),
            persistence if isinstance(persistence, bool) else None,
        )


class RecordingNvml:
    """Passes every call to `inner` and keeps its answer (or error) in the replay format."""

    def __init__(self, inner: Nvml, recorded_on: str) -> None:
        self._inner = inner
        self.recorded_on = recorded_on
        self.answers: dict[str, list[object]] = {}

    def _keep(self, key: str, call: Callable[[], Any]) -> Any:
        try:
            value = call()
        except NvmlError as err:
            self.answers.setdefault(key, []).append({"error": err.kind})
            raise
        self.answers.setdefault(key, []).append(_answer_to_json(value))
        return value

    def recording(self) -> dict[str, object]:
        return {"format": FORMAT, "recorded_on": self.recorded_on, "answers": self.answers}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.recording(), indent=1) + "\n", encoding="utf-8")

    def init(self) -> None:
        self._keep("init", self._inner.init)

    def shutdown(self) -> None:
        self._keep("shutdown", self._inner.shutdown)

    def driver_version(self) -> str:
        result: str = self._keep("driver_version", self._inner.driver_version)
        return result

    def device_count(self) -> int:
        result: int = self._keep("device_count", self._inner.device_count)
        return result

    def device(self, index: int) -> Device:
        result: Device = self._keep(f"device/{index}", lambda: self._inner.device(index))
        return result

    def total_energy_mj(self, index: int) -> int:
        result: int = self._keep(f"total_energy_mj/{index}", lambda: self._inner.total_energy_mj(index))
        return result

    def process_samples(self, index: int, since_us: int) -> list[ProcessSample]:
        result: list[ProcessSample] = self._keep(
            f"process_samples/{index}", lambda: self._inner.process_samples(index, since_us)
        )
        return result

    def accounting(self, index: int) -> list[AccountingEntry]:
        result: list[AccountingEntry] = self._keep(
            f"accounting/{index}", lambda: self._inner.accounting(index)
        )
        return result

    def compute_processes(self, index: int) -> list[ProcessMemory]:
        result: list[ProcessMemory] = self._keep(
            f"compute_processes/{index}", lambda: self._inner.compute_processes(index)
        )
        return result

    def utilization_pct(self, index: int) -> int:
        result: int = self._keep(f"utilization_pct/{index}", lambda: self._inner.utilization_pct(index))
        return result

    def clocks(self, index: int) -> Clocks:
        result: Clocks = self._keep(f"clocks/{index}", lambda: self._inner.clocks(index))
        return result

"""Every NVML call energyd and the profiler make, behind one small interface (`Nvml`).

`PynvmlNvml` is NVIDIA's binding (`nvidia-ml-py`, imported lazily: the optional `gpu` extra);
`energyd.sources.nvml_replay` holds the replay of recorded answers (tests and benchmarks run the
production code without a GPU) and the recorder that writes them (scripts/gpu-measure.sh).

Errors come out as `NvmlError(kind)`, one kind per NVML error energyd tells apart (pynvml's
exception classes map to them by name, see NVML_ERROR_KINDS). Answers are external input: every
number is bounded and every string cut, naming the field when one is refused.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_DEVICES = 64
MAX_PROCESSES = 4096  # per GPU and call: more is refused rather than looped over
MAX_TEXT = 96
MAX_ENERGY_MJ = 2**64 - 1

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


def check_text(value: object, field: str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise NvmlError("invalid_answer", f"{field}: expected text, got {type(value).__name__}")
    return "".join(c for c in value if c.isprintable())[:MAX_TEXT]


def check_list(items: object, field: str) -> list[Any]:
    if not isinstance(items, list):
        raise NvmlError("invalid_answer", f"{field}: expected a list, got {type(items).__name__}")
    if len(items) > MAX_PROCESSES:
        raise NvmlError("invalid_answer", f"{field}: {len(items)} entries, more than {MAX_PROCESSES}")
    return items


def check_mhz(value: object, field: str) -> int | None:
    return None if value is None else bounded_int(value, field, 0, 100_000)


def check_pct(value: object, field: str) -> int:
    # NVML reports percents; a value past 100 is clamped rather than refused (seen on some boards).
    return min(bounded_int(value, field, 0, 2**32 - 1), 100)


def check_pid(value: object, field: str) -> int:
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
        return check_text(self._call("nvmlSystemGetDriverVersion"), "driver_version")

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
            check_text(self._call("nvmlDeviceGetUUID", h), "uuid"),
            check_text(self._call("nvmlDeviceGetName", h), "name"),
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
                check_pid(s.pid, "pid"),
                bounded_int(s.timeStamp, "timestamp_us", 0, 2**63 - 1),
                check_pct(s.smUtil, "sm_util_pct"),
            )
            for s in check_list(list(raw), "process_samples")
        ]

    def accounting(self, index: int) -> list[AccountingEntry]:
        h = self._handle(index)
        if self._call("nvmlDeviceGetAccountingMode", h) != self._nv.NVML_FEATURE_ENABLED:
            raise NvmlError("not_supported", "accounting mode is off (nvidia-smi -am 1 turns it on)")
        entries = []
        for raw_pid in check_list(self._call("nvmlDeviceGetAccountingPids", h), "accounting_pids"):
            try:
                stats = self._call("nvmlDeviceGetAccountingStats", h, raw_pid)
            except NvmlError as err:
                if err.kind == "not_found":  # left the accounting buffer meanwhile
                    continue
                raise
            entries.append(
                AccountingEntry(
                    check_pid(raw_pid, "pid"),
                    check_pct(stats.gpuUtilization, "gpu_util_pct"),
                    bounded_int(stats.time, "time_ms", 0, 2**63 - 1),
                    bool(stats.isRunning),
                )
            )
        return entries

    def compute_processes(self, index: int) -> list[ProcessMemory]:
        raw = self._call("nvmlDeviceGetComputeRunningProcesses", self._handle(index))
        return [
            ProcessMemory(
                check_pid(p.pid, "pid"),
                None if p.usedGpuMemory is None else bounded_int(p.usedGpuMemory, "used_bytes", 0, 2**63),
            )
            for p in check_list(list(raw), "compute_processes")
        ]

    def utilization_pct(self, index: int) -> int:
        return check_pct(
            self._call("nvmlDeviceGetUtilizationRates", self._handle(index)).gpu, "utilization_pct"
        )

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
            check_mhz(optional("nvmlDeviceGetMaxClockInfo", nv.NVML_CLOCK_SM), "sm_max_mhz"),
            check_mhz(
                optional("nvmlDeviceGetClock", nv.NVML_CLOCK_SM, nv.NVML_CLOCK_ID_APP_CLOCK_TARGET),
                "sm_app_mhz",
            ),
            check_mhz(
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

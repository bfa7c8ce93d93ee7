"""Recorded NVML answers: `ReplayNvml` answers from a recording, `RecordingNvml` writes one.

Recording format (``energyd-nvml-replay/1``)::

    {"format": "energyd-nvml-replay/1", "recorded_on": "...",
     "answers": {"init": [null], "driver_version": ["580.159.04"], "device_count": [1],
                 "device/0": [{"uuid": "GPU-...", "name": "NVIDIA H200", "mig_enabled": false}],
                 "total_energy_mj/0": [1000, 1410, {"error": "gpu_lost"}], ...}}

Each key is a call (with the device index after "/"); its list is answered in order, the last
answer repeating once the list is used up; `{"error": KIND}` raises. A call the recording never
answered raises `not_supported`, as NVML does for a function a GPU lacks. Replayed answers go
through the same bounds as the real binding's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from energyd.sources.nvml import (
    ERROR_KINDS,
    MAX_DEVICES,
    MAX_ENERGY_MJ,
    AccountingEntry,
    Clocks,
    Device,
    Nvml,
    NvmlError,
    ProcessMemory,
    ProcessSample,
    bounded_int,
    check_list,
    check_mhz,
    check_pct,
    check_pid,
    check_text,
)

FORMAT = "energyd-nvml-replay/1"
MAX_RECORDING_BYTES = 16 * 2**20


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
        return check_text(self._answer("driver_version"), "driver_version")

    def device_count(self) -> int:
        return bounded_int(self._answer("device_count"), "device_count", 0, MAX_DEVICES)

    def device(self, index: int) -> Device:
        d = self._record(f"device/{index}", "device")
        return Device(
            index,
            check_text(d.get("uuid"), "uuid"),
            check_text(d.get("name"), "name"),
            d.get("mig_enabled") is True,
        )

    def total_energy_mj(self, index: int) -> int:
        return bounded_int(self._answer(f"total_energy_mj/{index}"), "total_energy_mj", 0, MAX_ENERGY_MJ)

    def process_samples(self, index: int, since_us: int) -> list[ProcessSample]:
        samples = [
            ProcessSample(
                check_pid(s.get("pid"), "pid"),
                bounded_int(s.get("timestamp_us"), "timestamp_us", 0, 2**63 - 1),
                check_pct(s.get("sm_util_pct"), "sm_util_pct"),
            )
            for s in check_list(self._answer(f"process_samples/{index}"), "process_samples")
            if isinstance(s, dict)
        ]
        return [s for s in samples if s.timestamp_us > since_us]

    def accounting(self, index: int) -> list[AccountingEntry]:
        return [
            AccountingEntry(
                check_pid(a.get("pid"), "pid"),
                check_pct(a.get("gpu_util_pct"), "gpu_util_pct"),
                bounded_int(a.get("time_ms"), "time_ms", 0, 2**63 - 1),
                a.get("running") is True,
            )
            for a in check_list(self._answer(f"accounting/{index}"), "accounting")
            if isinstance(a, dict)
        ]

    def compute_processes(self, index: int) -> list[ProcessMemory]:
        return [
            ProcessMemory(
                check_pid(p.get("pid"), "pid"),
                None
                if p.get("used_bytes") is None
                else bounded_int(p.get("used_bytes"), "used_bytes", 0, 2**63),
            )
            for p in check_list(self._answer(f"compute_processes/{index}"), "compute_processes")
            if isinstance(p, dict)
        ]

    def utilization_pct(self, index: int) -> int:
        return check_pct(self._answer(f"utilization_pct/{index}"), "utilization_pct")

    def clocks(self, index: int) -> Clocks:
        c = self._record(f"clocks/{index}", "clocks")
        persistence = c.get("persistence")
        return Clocks(
            check_mhz(c.get("sm_max_mhz"), "sm_max_mhz"),
            check_mhz(c.get("sm_app_mhz"), "sm_app_mhz"),
            check_mhz(c.get("sm_app_default_mhz"), "sm_app_default_mhz"),
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

"""The report says, per profile, whether its energy was measured or estimated, and leads with
the measured ones (issue 13: measured energy first)."""

from __future__ import annotations

from pathlib import Path

import yaml

from adapter.profiles import load_profile, measured_energy_source
from adapter.settings import default_profiles_dir
from adapter.sim import report


def _with_source(tmp_path: Path, name: str, source: str | None) -> Path:
    data = yaml.safe_load((default_profiles_dir() / "video.yaml").read_text(encoding="utf-8"))
    data["pipeline"] = name
    if source is None:
        del data["energy_source"]
    else:
        data["energy_source"] = source
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_shipped_profiles_state_their_energy_is_an_estimate() -> None:
    for path in sorted(default_profiles_dir().glob("*.yaml")):
        profile = load_profile(path)
        assert profile.energy_source == "estimate" and measured_energy_source(profile) is None


def test_measured_profiles_lead_and_are_labelled(tmp_path: Path) -> None:
    estimated = _with_source(tmp_path, "cpu", "estimate")
    unstated = _with_source(tmp_path, "old", None)
    gpu = _with_source(tmp_path, "gpu", "nvml")
    rapl = _with_source(tmp_path, "rapl", "powercap")
    profiles = report.measured_first({path: load_profile(path) for path in (estimated, gpu, unstated, rapl)})
    assert list(profiles) == [gpu, rapl, estimated, unstated]
    meters = {path: measured_energy_source(profile) for path, profile in profiles.items()}
    assert meters == {estimated: None, gpu: "nvml", unstated: None, rapl: "powercap"}
    assert "**Energy is measured** (energyd's nvml source" in report._energy_words(load_profile(gpu))
    assert "**Energy is an estimate**" in report._energy_words(load_profile(unstated))
    mixed = report._measured_and_estimated({"gpu": "nvml", "cpu": None})
    assert "Energy measured: `gpu` (nvml)" in mixed and "Energy estimated" in mixed and "`cpu`" in mixed
    # All estimated: the words the committed report carries.
    assert "waits for issue 12's profiles" in report._measured_and_estimated({"cpu": None})

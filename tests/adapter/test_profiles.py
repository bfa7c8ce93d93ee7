"""Profile files: valid ones load from YAML and JSON alike; bad ones name file, field and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings

from adapter.errors import ProfileError
from adapter.profiles import load_profile, load_profiles, parse_profile
from tests.adapter.strategies import profile_dicts

VALID: dict[str, Any] = {
    "pipeline": "video",
    "measured_on": "2 cores",
    "stages": [
        {
            "name": "detect",
            "variants": [
                {
                    "name": "yolov5n",
                    "accuracy": 45.7,
                    "accuracy_source": "YOLOv5 release notes",
                    "cores": 1,
                    "idle_power_w": 1.8,
                    "batches": [
                        {"size": 4, "latency_s": 0.300, "throughput_rps": 13.3, "energy_per_request_j": 0.30},
                        {"size": 1, "latency_s": 0.093, "energy_per_request_j": 0.41},
                    ],
                }
            ],
        }
    ],
}


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data) if path.suffix == ".json" else yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_valid_profile_loads_with_defaults(tmp_path: Path, suffix: str) -> None:
    profile = load_profile(write(tmp_path / f"video{suffix}", VALID))
    variant = profile.stages[0].variant("yolov5n")
    assert [b.size for b in variant.batches] == [1, 4]  # sorted on load
    assert variant.batch(1).replica_throughput_rps == pytest.approx(1 / 0.093)  # size / latency_s
    assert variant.batch(4).replica_throughput_rps == 13.3  # measured wins


def broken(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(VALID))
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


CASES = [
    (
        ("stages", 0, "variants", 0, "batches", 0, "latency_s"),
        -1.0,
        "stages[0].variants[0].batches[0].latency_s",
    ),
    (("stages", 0, "variants", 0, "accuracy"), 120.0, "stages[0].variants[0].accuracy"),
    (("stages", 0, "variants", 0, "cores"), "two", "stages[0].variants[0].cores"),
    (("stages", 0, "variants", 0, "batches", 1, "size"), 4, "stages[0].variants[0]"),  # duplicate size
    (("stages", 0, "variants", 0, "colour"), "red", "stages[0].variants[0].colour"),  # unknown field
    (("stages",), [], "stages"),
]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize(("path", "value", "field"), CASES)
def test_errors_name_file_and_field(
    tmp_path: Path, suffix: str, path: tuple[str | int, ...], value: Any, field: str
) -> None:
    file = write(tmp_path / f"bad{suffix}", broken(path, value))
    with pytest.raises(ProfileError) as info:
        load_profile(file)
    assert info.value.source == str(file)
    assert info.value.field == field
    assert str(info.value).startswith(f"{file}: {field}: ")


def test_infinite_numbers_are_refused(tmp_path: Path) -> None:
    # YAML's .inf would otherwise give a zero throughput (size / inf) and divide by it later.
    file = tmp_path / "inf.yaml"
    file.write_text(yaml.safe_dump(VALID).replace("latency_s: 0.093", "latency_s: .inf"), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"batches\[1\]\.latency_s: Input should be a finite number"):
        load_profile(file)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile(bad)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("- [unclosed", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(bad_yaml)
    with pytest.raises(ProfileError, match=r"\(top level\)"):
        parse_profile(["a", "list"], "list.yaml")


def test_load_profiles_reads_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", VALID)
    write(tmp_path / "b.json", {**VALID, "pipeline": "audio"})
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    assert sorted(load_profiles(tmp_path)) == ["audio", "video"]
    write(tmp_path / "c.yml", VALID)
    with pytest.raises(ProfileError, match="duplicate pipeline name 'video'"):
        load_profiles(tmp_path)
    with pytest.raises(ProfileError, match="not a directory"):
        load_profiles(tmp_path / "a.yaml")


@settings(max_examples=50, deadline=None)
@given(data=profile_dicts())
def test_generated_profiles_round_trip_through_both_formats(
    tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    directory = tmp_path_factory.mktemp("round")
    from_yaml = load_profile(write(directory / "p.yaml", data))
    from_json = load_profile(write(directory / "p.json", data))
    assert from_yaml == from_json == parse_profile(data)

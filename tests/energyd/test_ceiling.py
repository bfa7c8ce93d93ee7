"""Power ceilings: the defaults per zone kind, overrides by name or kind, and the flag."""

from __future__ import annotations

import argparse

import pytest

from energyd.cli import config_from_args, parser
from energyd.sources.ceiling import WHOLE_NODE_MAX_POWER_W, max_power_w, parse_max_power, zone_kind


def test_per_socket_zones_get_their_kind_and_whole_node_zones_the_node_default() -> None:
    assert [zone_kind(z) for z in ("package-0", "package-1-die-1", "package-0-mmio", "dram-3")] == [
        "package",
        "package",
        "package",
        "dram",
    ]
    assert max_power_w("package-0") == 1000.0 and max_power_w("dram-1") == 500.0
    # perf's package sums every socket, psys spans the platform: whole-node ceilings.
    for zone in ("package", "psys", "estimate", "gpu-0"):
        assert max_power_w(zone) == (1500.0 if zone == "gpu-0" else WHOLE_NODE_MAX_POWER_W)
    assert max_power_w("package-1", {"package": 600.0}) == 600.0
    assert max_power_w("package-1", {"package": 600.0, "package-1": 400.0}) == 400.0
    assert max_power_w("package", {"package": 600.0}) == 600.0


@pytest.mark.parametrize(
    "text", ["package", "=5", "package=abc", "package=0", "package=-3", "package=inf", "P=1"]
)
def test_bad_ceilings_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_max_power(text)


def test_the_flag_reaches_the_config() -> None:
    args = parser().parse_args(["run", "--max-power-w", "package=800", "--max-power-w", "psys=2500"])
    assert config_from_args(args).max_power_w == (("package", 800.0), ("psys", 2500.0))
    assert config_from_args(parser().parse_args(["run"])).max_power_w == ()

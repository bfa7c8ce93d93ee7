"""Write every dashboard's JSON: `python -m dashboards.generate [--out DIR]` (what `make dashboards` runs)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

from dashboards import adapter_dashboard, energyd_dashboard

BUILDERS: dict[str, Callable[[], Dashboard]] = {
    "energyd": energyd_dashboard.build,
    "adapter": adapter_dashboard.build,
}


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in BUILDERS.items():
        path = out_dir / f"{name}.json"
        path.write_text(
            json.dumps(build().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"
        )
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out", help="output folder")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

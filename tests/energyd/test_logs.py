"""What both CLIs share (energyd/logs.py): --version, --log-format json, --help that gives
every option a help text and says each default once; and energyd's port in use is one line
before anything says it listens (the adapter's: tests/adapter/test_serving.py)."""

from __future__ import annotations

import argparse
import json
import logging
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from adapter import __version__ as adapter_version
from adapter.cli import parser as adapter_parser
from energyd import __version__ as energyd_version
from energyd import logs
from energyd.cli import parser as energyd_parser
from tests.energyd.cgroup_trees import NodeTree


@pytest.mark.parametrize(
    ("module", "expected"),
    [("energyd", f"energyd {energyd_version}"), ("adapter", f"adapter {adapter_version}")],
)
def test_version(module: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; from {module}.cli import main; sys.exit(main())", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == expected


def test_json_logs_are_one_object_per_line_with_the_traceback_inside() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging; from energyd import logs; logs.configure('INFO', 'json')\n"
            "log = logging.getLogger('energyd.test'); log.debug('hidden'); log.info('pod %s', 'a\"b')\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('failed')",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    records = [json.loads(line) for line in out.stderr.splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("INFO", "energyd.test", 'pod a"b'),
        ("ERROR", "energyd.test", "failed"),
    ]
    assert "ZeroDivisionError" in records[1]["exception"] and records[0]["time"].endswith("+00:00")


def test_energyd_accepts_log_format_json() -> None:
    args = energyd_parser().parse_args(["--log-format", "json", "probe"])
    assert args.log_format == "json"
    with pytest.raises(SystemExit):
        energyd_parser().parse_args(["--log-format", "xml", "probe"])


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found = {parser.prog: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.update(subparsers(child))
    return found


# Every command and subcommand of both CLIs.
PARSERS = {**subparsers(energyd_parser()), **subparsers(adapter_parser())}


@pytest.mark.parametrize("prog", sorted(PARSERS))
def test_help_explains_every_option_and_says_each_default_once(prog: str) -> None:
    parser = PARSERS[prog]
    undocumented = [a.option_strings for a in parser._actions if a.option_strings and not a.help]
    assert undocumented == []
    text = parser.format_help()
    for line in re.split(r"\n\s*(?=-)", text):
        assert line.count("(default") <= 1, line


def test_defaults_formatter_appends_only_missing_defaults() -> None:
    parser = argparse.ArgumentParser(formatter_class=logs.DefaultsHelpFormatter)
    parser.add_argument("--port", type=int, default=8080, help="API port")
    parser.add_argument("--sla-s", type=float, default=None, help="SLA (default: from the profile)")
    parser.add_argument("--apply", action="store_true", help="patch Seldon")
    text = " ".join(parser.format_help().split())
    assert "API port (default: 8080)" in text and "(default: None)" not in text
    assert "(default: False)" not in text and text.count("default") == 2
    logging.getLogger().handlers.clear()


def test_energyd_port_in_use_is_one_line_and_nothing_claims_to_listen(tmp_path: Path) -> None:
    roots = NodeTree(tmp_path).roots
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(
            [
                sys.executable, "-c", "import sys; from energyd.cli import main; sys.exit(main())",
                "run", "--source=estimate", "--host=127.0.0.1", f"--port={port}",
                f"--sysfs-root={roots.sysfs}", f"--procfs-root={roots.procfs}", f"--cgroup-root={roots.cgroup}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert not [line for line in lines if "serving" in line or "listening" in line], lines
    assert lines[-1].startswith("energyd: error: cannot listen on 127.0.0.1:") and "in use" in lines[-1]

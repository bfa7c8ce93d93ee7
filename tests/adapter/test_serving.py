"""`adapter run` as an operator meets it: start-up errors in one line before anything claims to
listen, /docs without the internet, JSON logs, and no log line per scrape."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from adapter.cli import main
from adapter.extras import missing_extra_message
from tests.prom import free_port

ADAPTER = [sys.executable, "-c", "import sys; from adapter.cli import main; sys.exit(main())"]


def test_a_port_in_use_is_one_line_before_anything_claims_to_listen(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["run", "--host=127.0.0.1", f"--port={port}", "--prometheus-url="]) == 2
    out, err = capsys.readouterr()
    assert "API on" not in out and "listening" not in out
    assert err.strip().splitlines() == [
        f"adapter run: cannot listen on 127.0.0.1:{port}: address already in use (choose another --port)"
    ]


@pytest.mark.parametrize("make_dir", [False, True])
def test_an_empty_or_missing_profiles_directory_is_an_error(
    tmp_path: Path, make_dir: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    profiles = tmp_path / "profiles"
    if make_dir:
        profiles.mkdir()
        (profiles / "README.txt").write_text("not a profile")
    assert main(["run", f"--profiles={profiles}", f"--port={free_port()}", "--prometheus-url="]) == 2
    out, err = capsys.readouterr()
    assert "loop(s)" not in out and str(profiles) in err
    assert ("no *.yaml, *.yml or *.json profile" if make_dir else "not a directory") in err


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_served_docs_logs_and_scrapes(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*ADAPTER, "run", "--host=127.0.0.1", f"--port={port}", "--prometheus-url=", "--log-format=json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while get_or_none(f"{base}/healthz") is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        for _ in range(3):
            assert get(f"{base}/metrics")[0] == 200
        status, docs = get(f"{base}/docs")
        assert status == 200
        status, redoc = get(f"{base}/redoc")
        assert status == 200
        assert get(f"{base}/no-such-page")[0] == 404
        # Every asset the two pages load comes from the adapter itself: no host is named, and
        # each relative URL they reference answers.
        for page in (docs, redoc):
            assert not re.search(r"(https?:)?//[a-z0-9]", page, re.IGNORECASE), page
            for asset in re.findall(r"""(?:src|href|url)\s*[:=]\s*['"](/[^'"]+)['"]""", page):
                assert get(base + asset)[0] == 200, asset
        assert "swagger-ui-bundle.js" in docs and "redoc.standalone.js" in redoc
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.startswith(f"adapter: API on {base}/docs")
    records = [json.loads(line) for line in err.splitlines()]  # every line one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    access = [r["message"] for r in records if r["logger"] == "uvicorn.access"]
    # The scrapes and probes leave no line; the pages and the failed request do.
    assert not [m for m in access if "/metrics" in m or "/healthz" in m], access
    assert any('"GET /docs' in m for m in access) and any("/no-such-page" in m and "404" in m for m in access)


def get_or_none(url: str) -> int | None:
    try:
        return get(url)[0]
    except (urllib.error.URLError, ConnectionError):
        return None


def test_a_command_without_its_extra_says_what_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    message = missing_extra_message(ModuleNotFoundError("no", name="matplotlib.figure"), "evaluate")
    assert (
        message
        == "adapter evaluate: needs matplotlib, which this installation lacks: pip install 'energyd[eval]'"
    )
    assert missing_extra_message(ModuleNotFoundError("no", name="adapter.nothing"), "run") is None

"""bench/http.py keeps working: a --quick run against Prosody and jaybird exits 0, prints every figure for
both with a ratio column, and writes no results file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.peers import require_binary

BENCH = Path(__file__).resolve().parents[2] / "bench" / "http.py"

pytestmark = pytest.mark.timeout(60)


def rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows as {figure: [prosody, jaybird, ratio]}."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("figure", "---"):
            found[cells[0]] = cells[1:]
    return found


def number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("x"))


def test_quick_run_against_prosody_and_jaybird(tmp_path: Path) -> None:
    require_binary("prosody")
    out = tmp_path / "http.json"
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| figure | prosody | jaybird | jaybird/prosody |" in result.stdout
    table = rows(result.stdout)
    for key in ("a BOSH n=4 KB/session", "a BOSH n=4 RSS MB", "b WebSocket 2 pairs msg/s"):
        prosody, jaybird, ratio = table[key]
        assert number(prosody) > 0 and number(jaybird) > 0 and ratio.endswith("x"), (key, table[key])
    for server in (0, 1):
        p50, p99 = (
            number(table["a BOSH n=4 delivery p50 ms"][server]),
            number(table["a BOSH n=4 delivery p99 ms"][server]),
        )
        assert 0 < p50 <= p99
    assert not any(key.endswith("failed") for key in table), result.stdout
    # Progress lines, one per step, with the elapsed time.
    assert "] jaybird: scenario b" in result.stdout and "] prosody: scenario a" in result.stdout
    assert not out.exists()  # --quick never overwrites measured figures
    assert elapsed < 20, f"the smoke run took {elapsed:.1f} s"

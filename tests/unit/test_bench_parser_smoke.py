"""bench/parser.py keeps working: a --quick run exits 0 and reports jaybird's and slixmpp's parsers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "parser.py"


def test_quick_parser_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--only", "jaybird", "slixmpp", "expat-raw"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    table = [line.split() for line in result.stdout.splitlines()]
    rates = {cells[0]: float(cells[1].replace(",", "")) for cells in table if len(cells) > 1 and cells[1][0].isdigit()}
    assert rates.keys() >= {"jaybird", "slixmpp"}, result.stdout
    assert rates["jaybird"] > 0 and rates["slixmpp"] > 0  # stanzas/s
    assert "jaybird / slixmpp throughput" in result.stdout

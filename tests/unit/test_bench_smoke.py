"""bench/run.py keeps working: a --quick run of every scenario against Prosody exits 0, prints a figure for
each scenario, and writes no results file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.peers import require_binary

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"

pytestmark = pytest.mark.timeout(60)


def figures(stdout: str) -> dict[str, float]:
    """The table's rows as {figure: Prosody's value}."""
    found: dict[str, float] = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1] not in ("---", "prosody", "-"):
            found[cells[0]] = float(cells[1].replace(",", ""))
    return found


def quick_rows(*options: str) -> tuple[dict[str, list[str]], str]:
    """A --quick run with ``options`` (it must succeed): the rows of its two-server table by figure, and stdout."""
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", *options], capture_output=True, text=True, timeout=55, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if len(cells := [cell.strip() for cell in line.strip().strip("|").split("|")]) == 4
    }
    return rows, result.stdout


def test_quick_run_against_prosody(tmp_path: Path) -> None:
    require_binary("prosody")
    out = tmp_path / "servers.json"
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--servers", "prosody", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stdout + result.stderr
    table = figures(result.stdout)
    assert table["a throughput N=10 msg/s"] > 0
    assert table["b logins STARTTLS+SCRAM-SHA-1 /s"] > 0
    assert table["b logins plain+SCRAM-SHA-1 /s"] > 0
    assert table["b logins plain+PLAIN /s"] > 0
    assert table["c idle n=30 RSS MB"] > 0
    assert 0 < table["d latency at 200 msg/s p50 ms"] <= table["d latency at 200 msg/s p99 ms"]
    assert table["e fan-out 10 online ms"] > 0
    assert not any(key.endswith("failed") for key in table), result.stdout
    # One line per step, each with the elapsed time.
    assert "prosody: scenario e" in result.stdout
    assert not out.exists()  # --quick never overwrites measured figures
    assert elapsed < 30, f"the smoke run took {elapsed:.1f} s"


def test_unknown_server_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--servers", "openfire"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown server" in result.stderr


def test_quick_run_against_jaybird_and_its_workers(tmp_path: Path) -> None:
    """The one-core jaybird row and the two-worker row behind the multi-core figure both still run."""
    rows, stdout = quick_rows("--servers", "jaybird,jaybird-2w", "--scenarios", "a,b,c")
    assert rows["figure"] == ["jaybird", "jaybird-2w", "jaybird-2w/jaybird"]
    for figure in (
        "a throughput N=10 msg/s",
        "b logins STARTTLS+SCRAM-SHA-1 /s",
        "b logins plain+SCRAM-SHA-1 /s",
        "c idle n=30 RSS MB",
    ):
        one, two, _ratio = rows[figure]
        assert float(one.replace(",", "")) > 0 and float(two.replace(",", "")) > 0, figure
    assert "failed" not in stdout


def test_prosody_variant_with_the_generational_collector(tmp_path: Path) -> None:
    """`prosody-gengc` is Prosody's bench config plus Lua's generational collector, nothing else changed."""
    require_binary("prosody")
    sys.path.insert(0, str(BENCH.parents[1]))
    from bench.servers import ProsodyBench, ProsodyGenerationalBench
    from tests.peers.certs import self_signed

    pair = self_signed(tmp_path / "certs", ["localhost"])
    plain = ProsodyBench(tmp_path / "p")._server._config(pair.cert, pair.key)
    variant = ProsodyGenerationalBench(tmp_path / "v")._server._config(pair.cert, pair.key)
    collector = 'gc = { ["mode"] = "generational"; }'
    head, _, hosts = variant.partition("\nVirtualHost ")
    assert collector in head.splitlines()  # a global option, before the first host
    assert collector not in plain

    def options(config: str) -> list[str]:
        return [line.split(" = ")[0] for line in config.partition("\nVirtualHost ")[0].splitlines() if " = " in line]

    assert options(variant) == [*options(plain), "gc"]
    assert hosts.count("\n") == plain.partition("\nVirtualHost ")[2].count("\n")


def test_quick_paired_logins_of_jaybird_and_prosody() -> None:
    """(b) pairs jaybird with each other server on one core: both rows carry a figure for each server."""
    require_binary("prosody")
    rows, stdout = quick_rows("--servers", "prosody,jaybird", "--scenarios", "b")
    for figure in ("/s", "server ms CPU/login"):
        prosody, jaybird, ratio = rows[f"b paired with prosody: STARTTLS+SCRAM-SHA-1 {figure}"]
        assert float(prosody.replace(",", "")) > 0 and float(jaybird.replace(",", "")) > 0
        assert ratio.endswith("x")
    assert "paired: jaybird and prosody on one core" in stdout

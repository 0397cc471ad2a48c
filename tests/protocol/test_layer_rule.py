"""The stream machine is sans-I/O (docs/architecture.md, L1): no asyncio, sockets or drivers."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import jaybird.stream

STREAM_PACKAGE = Path(jaybird.stream.__file__).parent
FORBIDDEN = ("asyncio", "socket", "ssl", "selectors", "jaybird.transport", "jaybird.server", "jaybird.client")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_no_io_imports_in_the_stream_package() -> None:
    files = sorted(STREAM_PACKAGE.rglob("*.py"))
    assert files
    for path in files:
        for module in imported_modules(path):
            assert not any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN), (path, module)


def test_importing_the_machine_loads_no_event_loop_or_driver() -> None:
    code = (
        "import sys, jaybird.stream.machine\n"
        "bad = [m for m in sys.modules if m == 'asyncio' or m.startswith(('jaybird.transport', 'jaybird.server',"
        " 'jaybird.client'))]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == ""

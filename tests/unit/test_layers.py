"""The layer rule of docs/architecture.md: imports point down only, and I/O lives in L2 alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "jaybird"

# Module (or package prefix) -> layer. The most specific prefix wins.
LAYERS: dict[str, int] = {
    "jaybird": 0,
    "jaybird.ns": 0,
    "jaybird.jid": 0,
    "jaybird.errors": 0,
    "jaybird.stanza": 0,
    "jaybird.xml.element": 0,
    "jaybird.xml.serializer": 0,
    "jaybird.xml": 1,
    "jaybird.sasl": 1,
    "jaybird.stream": 1,
    "jaybird.transport": 2,
    "jaybird.dispatch": 2,
    "jaybird.client": 2,
    "jaybird.session": 2,
    "jaybird.component": 2,
    "jaybird.cli": 2,
    "jaybird.server": 2,
    "jaybird.ext": 3,
}
IO_MODULES = {"asyncio", "socket", "selectors", "subprocess", "aiohttp", "dns.asyncresolver", "sqlalchemy"}


def layer_of(module: str) -> int:
    best = ""
    for prefix in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best = prefix
    return LAYERS[best]


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append((".".join(parts), path))
    return found


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_point_down(module: str, path: Path) -> None:
    own = layer_of(module)
    for name in imports(path):
        if name.startswith("jaybird"):
            assert layer_of(name) <= own, f"{module} (L{own}) imports {name} (L{layer_of(name)})"
        elif own < 2:
            top = name.split(".")[0]
            assert name not in IO_MODULES and top not in IO_MODULES, f"{module} (L{own}) does I/O via {name}"


def test_core_imports_no_extension_by_name() -> None:
    for module, path in modules():
        if module.startswith("jaybird.ext"):
            continue
        for name in imports(path):
            assert not name.startswith("jaybird.ext."), f"{module} imports the extension {name}"

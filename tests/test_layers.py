"""The layers of the package, bottom to top, and the rule that imports only point down.

A module may import modules of its own layer or of a lower one, never of a higher one. The test
reads every source file's imports (with `ast`, so imports inside functions count too) and
fails on the first one that points upward, naming both modules. A new top-level module or
package must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"

# Bottom to top. A module belongs to the layer of its longest listed prefix.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "vocabulary",
        (
            "spectraseg.errors",
            "spectraseg.grid",
            "spectraseg.settings",
            "spectraseg.classes",
            "spectraseg.version",
            "spectraseg.progress",
            # The head and its threshold/argmax rule: pure numpy, named by the io/ raster format.
            "spectraseg.models.head",
        ),
    ),
    ("io", ("spectraseg.io",)),
    ("data", ("spectraseg.data", "spectraseg.sample")),
    ("models", ("spectraseg.models",)),
    ("train", ("spectraseg.train",)),
    ("predict", ("spectraseg.predict",)),
    ("postprocess/evaluate", ("spectraseg.postprocess", "spectraseg.evaluate")),
    ("report", ("spectraseg.report",)),
    ("workflow", ("spectraseg.workflow", "spectraseg.config", "spectraseg.run_settings")),
    ("search", ("spectraseg.search",)),
    # The demo runs the whole pipeline, so it sits with it.
    ("pipeline", ("spectraseg.pipeline", "spectraseg.demo")),
    ("cli", ("spectraseg.cli", "spectraseg.__main__", "spectraseg")),
)


# Upward imports allowed, each with the reason; empty: every import points down.
ALLOWED_UPWARD: set[tuple[str, str]] = set()


def layer_of(module: str) -> int:
    """The position of `module`'s layer; the longest matching prefix wins."""
    best, best_length = -1, -1
    for position, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_length:
                best, best_length = position, len(prefix)
    if best < 0:
        raise AssertionError(f"{module}: no layer; add it to LAYERS in tests/test_layers.py")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Every spectraseg module `path` imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return [name for name in found if name == "spectraseg" or name.startswith("spectraseg.")]


SOURCES = sorted((SOURCE / "spectraseg").rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_point_only_down(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    upward = [
        f"{module} ({LAYERS[own][0]}) imports {name} ({LAYERS[layer_of(name)][0]})"
        for name in imports_of(path)
        if layer_of(name) > own and (module, name) not in ALLOWED_UPWARD
    ]
    assert not upward, "; ".join(upward)


def test_every_allowed_upward_import_still_exists() -> None:
    found = {(module_name(path), name) for path in SOURCES for name in imports_of(path)}
    assert ALLOWED_UPWARD <= found, "remove from ALLOWED_UPWARD: " + str(ALLOWED_UPWARD - found)


def test_a_module_importing_upward_is_caught(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from spectraseg.cli.main import main\n")
    assert imports_of(bad) == ["spectraseg.cli.main"]
    assert layer_of("spectraseg.cli.main") > layer_of("spectraseg.io.rasters")

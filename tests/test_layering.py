"""The package's layers import one way (see ARCHITECTURE.md "Layers"), checked on every import statement of every
module, at the top of a file or inside a function: a function-level import is still a dependency."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = REPO_ROOT / "hf_spatial"
# Folders outside hf_spatial/ installed as its sub-packages (pyproject `package-dir`).
MAPPED_PACKAGES = {REPO_ROOT / "hub_cards": "hf_spatial.hub_cards"}
MODEL_FOLDER = "hf_spatial.models.spatial_qwen_audio"

# Module prefix -> (layer, rank). The longest matching prefix wins. A module may import its own layer and any layer
# of lower rank; layers of equal rank sit beside each other and do not import each other.
LAYERS: dict[str, tuple[str, int]] = {
    # The package root (version, Auto registration), the remote-code model folder and dependency-free helpers.
    "hf_spatial": ("base", 0),
    "hf_spatial.atomic": ("base", 0),
    "hf_spatial.sharding": ("base", 0),
    MODEL_FOLDER: ("base", 0),
    "hf_spatial.models.auto_registration": ("base", 0),
    "hf_spatial.conventions": ("conventions", 1),
    "hf_spatial.acoustics": ("acoustics", 2),
    "hf_spatial.data": ("data", 3),
    "hf_spatial.tasks": ("tasks", 4),
    "hf_spatial.seld": ("seld", 4),
    "hf_spatial.models": ("models", 4),
    "hf_spatial.training": ("training", 5),
    "hf_spatial.evaluation": ("evaluation", 5),
    "hf_spatial.pretrained": ("pretrained", 5),
    "hf_spatial.hub": ("hub", 6),
    "hf_spatial.hub_cards": ("hub", 6),
    "hf_spatial.publish": ("app", 7),
    "hf_spatial.cli": ("app", 7),
    "hf_spatial.__main__": ("app", 7),
    "hf_spatial.env": ("app", 7),
    "hf_spatial.demo": ("app", 7),
}

# What the model folder may import: `save_pretrained` copies it for `trust_remote_code` loading without the package.
# huggingface_hub is a hard dependency of transformers, so it is there wherever transformers is.
MODEL_FOLDER_EXTERNALS = {"transformers", "torch", "numpy", "huggingface_hub"}


def module_name(path: Path, root: Path = PACKAGE_ROOT, package: str = "hf_spatial") -> str:
    parts = (package, *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[str, bool]]:
    """(absolute name, relative?) of everything `source` imports; `from a import b` yields `a.b` when `a` is
    this package (b may be a submodule), else `a`."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, False) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            if name.split(".")[0] == "hf_spatial":
                found += [(f"{name}.{alias.name}", bool(node.level)) for alias in node.names]
            else:
                found.append((name, bool(node.level)))
    return found


def layer_of(name: str) -> tuple[str, int] | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    return None


def layer_violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported` (both hf_spatial modules), or None."""
    (source_layer, source_rank), (target_layer, target_rank) = layer_of(importer), layer_of(imported)
    if target_layer == source_layer or target_rank < source_rank:
        return None
    return f"{importer} ({source_layer}, rank {source_rank}) imports {imported} ({target_layer}, rank {target_rank})"


def package_modules() -> dict[str, tuple[Path, list[tuple[str, bool]]]]:
    modules = {}
    for root, package in {PACKAGE_ROOT: "hf_spatial", **MAPPED_PACKAGES}.items():
        for path in sorted(root.rglob("*.py")):
            name = module_name(path, root, package)
            source = path.read_text(encoding="utf-8")
            modules[name] = (path, imported_modules(source, name, path.name == "__init__.py"))
    return modules


def test_every_module_has_a_layer():
    assert [name for name in package_modules() if layer_of(name) is None] == []


def test_no_module_imports_a_higher_or_sibling_layer():
    problems = []
    for importer, (_, imports) in package_modules().items():
        for imported, _ in imports:
            if (
                imported.startswith("hf_spatial")
                and layer_of(imported) is not None
                and (why := layer_violation(importer, imported))
            ):
                problems.append(why)
    assert problems == []


def unit_of(name: str) -> str:
    """The entry of LAYERS a module belongs to (its longest matching prefix): the nodes of the package graph."""
    parts = name.split(".")
    return next(".".join(parts[:end]) for end in range(len(parts), 0, -1) if ".".join(parts[:end]) in LAYERS)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph `edges` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the search path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    return next((cycle for node in sorted(edges) if node not in state and (cycle := visit(node))), None)


def test_the_package_import_graph_has_no_cycle():
    edges: dict[str, set[str]] = {}
    for importer, (_, imports) in package_modules().items():
        for imported, _ in imports:
            if imported.startswith("hf_spatial") and unit_of(imported) != unit_of(importer):
                edges.setdefault(unit_of(importer), set()).add(unit_of(imported))
    assert find_cycle(edges) is None


def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_model_folder_imports_only_transformers_torch_numpy_and_itself():
    stdlib = set(sys.stdlib_module_names)
    problems = []
    for importer, (_, imports) in package_modules().items():
        if not (importer == MODEL_FOLDER or importer.startswith(MODEL_FOLDER + ".")):
            continue
        for imported, relative in imports:
            top = imported.split(".")[0]
            if imported.startswith(MODEL_FOLDER + "."):
                if not relative:  # an absolute import needs the installed package, which remote code lacks
                    problems.append(f"{importer}: import {imported} absolutely; import it relatively")
            elif top not in MODEL_FOLDER_EXTERNALS | stdlib:
                problems.append(f"{importer} imports {imported}")
    assert problems == []


@pytest.mark.parametrize(
    ("importer", "source", "expected"),
    [
        ("hf_spatial.tasks.x", "def f():\n    from hf_spatial.training.common import finish_stage\n", True),
        ("hf_spatial.evaluation.x", "from hf_spatial.training import collators\n", True),  # sibling layer
        ("hf_spatial.conventions", "import hf_spatial.acoustics.scene\n", True),
        ("hf_spatial.training.x", "from hf_spatial.tasks.prompting import format_prompt\n", False),
        ("hf_spatial.training.x", "from .records import STAGES_FILE\n", False),
        ("hf_spatial.data.x", "from hf_spatial import __version__\n", False),
    ],
)
def test_the_check_finds_a_back_edge_in_a_function(importer, source, expected):
    imports = imported_modules(source, importer, is_package=False)
    found = [layer_violation(importer, name) for name, _ in imports if name.startswith("hf_spatial")]
    assert any(found) is expected

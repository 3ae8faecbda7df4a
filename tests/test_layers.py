"""Package layers: all imports point down (engine <- amanflix <- output <- cli); the sandbox stands alone."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "amanflix_stress"
SHARED_LEAVES = {"amanflix_stress", "amanflix_stress.errors", "amanflix_stress.units"}

# layer -> the layers of ours it may import (besides itself and the shared leaves)
ALLOWED = {
    "engine": set(),
    "amanflix": {"engine"},
    "output": {"engine", "amanflix"},
    "sandbox": None,  # nothing of ours at all: it is the stand-in for a foreign server
}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything a module imports, relative imports resolved."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names if not node.module)
    return names


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "amanflix_stress" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ALLOWED else "top"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_down(layer):
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for module in imported_modules(path):
            if not module.startswith("amanflix_stress"):
                continue
            target = layer_of(module)
            if ALLOWED[layer] is None:
                ok = target == layer
            else:
                ok = target == layer or target in ALLOWED[layer] or module in SHARED_LEAVES
            if not ok:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert not wrong, "imports that cross a layer the wrong way:\n" + "\n".join(wrong)


def test_every_module_says_what_it_owns():
    missing = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()
    ]
    assert not missing, f"modules without a docstring: {missing}"

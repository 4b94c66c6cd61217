"""The layering of tinyllm, checked by parsing every module's imports (including those inside
functions): a module imports only from its own layer or the layers below it, and only the backend
imports NumPy. The test runs over whatever modules exist, so new files are checked as they come.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "tinyllm"

# lowest first; the layers of one entry may import each other
LAYERS = [
    {"backend"},
    {"kernels"},
    {"autograd"},
    {"ops"},
    {"nn"},
    {"models"},
    {"tokenizers", "data", "io", "utils"},
    {"optim", "train", "distributed", "metrics", "viz"},
    {"cli"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
UTILITIES = {"errors", "hub", "config", "validate"}  # importable from anywhere
TOP = len(LAYERS)  # tinyllm/__main__.py runs the CLI, above everything
ALLOWED_UPWARD = {
    ("tinyllm/autograd/tensor.py", "tinyllm.ops"),  # documented: Tensor's methods call the op library
    # Lazy imports, inside methods, of layers above
    # models (loaders and `model.generate`). Remove each entry when its import moves.
    ("tinyllm/models/llama.py", "tinyllm.io.gguf"),
    ("tinyllm/models/llama.py", "tinyllm.tokenizers.gguf_tokenizer"),
    ("tinyllm/models/bert_pretrained.py", "tinyllm.io.safetensors"),
    ("tinyllm/models/gpt2.py", "tinyllm.io.safetensors"),
    ("tinyllm/models/bert_pretrained.py", "tinyllm.tokenizers.wordpiece"),
}


def module_files() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(PACKAGE_DIR.parent).as_posix()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Return (line, absolute module name) for every import in the file; for `from tinyllm import
    x` the name is tinyllm.x when x is a submodule, else tinyllm."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_submodule = _exists(candidate)
                found.append((node.lineno, candidate if is_submodule else base))
    return found


def lazy_modules(path: Path) -> list[str]:
    """Return the modules a package's `_LAZY = {module name: names}` table imports on first use (PEP 562)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            return [key.value for key in node.value.keys if isinstance(key, ast.Constant)]
    return []


def _exists(name: str) -> bool:
    path = PACKAGE_DIR.parent / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def rank_of(name: str) -> int | None:
    """Return the layer rank of a tinyllm module name (None for the utilities and non-tinyllm)."""
    parts = name.split(".")
    if parts[0] != "tinyllm":
        return None
    if len(parts) == 1:  # `import tinyllm`: as high as the highest layer tinyllm/__init__.py pulls in
        names = [n for _, n in imported_modules(PACKAGE_DIR / "__init__.py") if n != "tinyllm"]
        ranks = [rank_of(n) for n in names + lazy_modules(PACKAGE_DIR / "__init__.py")]
        return max((r for r in ranks if r is not None), default=None)
    if parts[1] == "__main__":
        return TOP
    if parts[1] in UTILITIES:
        return None
    if parts[1] not in RANK:
        raise AssertionError(f"{name}: tinyllm.{parts[1]} is in no layer; add it to LAYERS in {__file__}")
    return RANK[parts[1]]


@pytest.mark.parametrize("path", module_files(), ids=relative)
def test_module_imports_only_from_its_layer_or_below(path):
    own = rank_of(module_name(path))
    if own is None:  # a utility: it may import only other utilities
        own = -1
    upward = []
    for line, name in imported_modules(path):
        rank = rank_of(name)
        if rank is not None and rank > own and (relative(path), name) not in ALLOWED_UPWARD:
            upward.append(f"{relative(path)}:{line} imports {name} (layer {rank} > {own})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("path", module_files(), ids=relative)
def test_only_the_backend_imports_numpy(path):
    if relative(path).startswith("tinyllm/backend/"):
        return
    direct = [
        f"{relative(path)}:{line} imports {name}"
        for line, name in imported_modules(path)
        if name == "numpy" or name.startswith("numpy.")
    ]
    assert not direct, "use `from tinyllm.backend import np` instead:\n" + "\n".join(direct)


def test_the_checker_sees_an_upward_import_and_a_numpy_import(tmp_path, monkeypatch):
    fake_package = tmp_path / "tinyllm"
    (fake_package / "ops").mkdir(parents=True)
    (fake_package / "models").mkdir()
    (fake_package / "models" / "__init__.py").write_text("")
    bad = fake_package / "ops" / "bad.py"
    bad.write_text("import numpy as np\n\ndef f():\n    from tinyllm.models import gpt\n    from ..models import x\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE_DIR", fake_package)
    assert imported_modules(bad) == [(1, "numpy"), (4, "tinyllm.models"), (5, "tinyllm.models")]
    with pytest.raises(AssertionError, match="tinyllm.models"):
        test_module_imports_only_from_its_layer_or_below(bad)
    with pytest.raises(AssertionError, match="numpy"):
        test_only_the_backend_imports_numpy(bad)

"""Mutation testing of tinyllm's core: break the engine on purpose, one small change at a time,
and count how many of the changes the tests catch.

    python scripts/mutation_check.py                   # a sample: 30 mutants per module, seed 0
    python scripts/mutation_check.py --all             # every mutant (hours)
    python scripts/mutation_check.py --only ops/ --per-module 60
    python scripts/mutation_check.py --ci              # the small sample CI runs; exit 1 under the threshold

A mutant is the source of one module with one change: an arithmetic or comparison operator
swapped, a constant tweaked (0 <-> 1, n -> n + 1, True <-> False), a condition negated, a
statement removed, a `return x` turned into `return None`, the first two arguments of a call
swapped. Mutants are enumerated from the AST in a fixed order and sampled with a fixed seed, so a
run is repeatable. Each mutant is written into a temporary copy of the package (the checkout is
never touched) and the tests mapped to its module (TESTS below) run against it, fastest first,
stopping at the first failure. A mutant is killed when a test fails, errors or runs past the
timeout; it survives when every mapped test passes.

Speed: the parent process imports the heavy libraries (NumPy, PyTorch, Numba, hypothesis,
pytest) once and forks a child per test run; the child imports the (mutated) tinyllm from the
copy. Numba's on-disk cache is copied along and restored after each kernel mutant, so only the
mutated kernel is recompiled. Hypothesis runs the `ci` profile derandomized and without
shrinking (a failing example is enough to kill a mutant).

The CUDA kernels (`kernels/*_cuda.py`) are left out on a machine without a GPU: no test can run
them there, so their mutants would all survive.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# the module groups scored separately, in the order of the table
GROUPS = [
    "autograd/",
    "ops/",
    "kernels/",
    "optim/",
    "nn/attention.py",
    "nn/rope.py",
    "io/",
    "tokenizers/",
]
CUDA_FILES = ["kernels/attention_cuda.py", "kernels/matmul_cuda.py"]

_OPS_TESTS = [
    "tests/test_ops_elementwise.py",
    "tests/test_ops_reductions.py",
    "tests/test_ops_shape.py",
    "tests/test_ops_nn.py",
    "tests/test_ops_edge_shapes.py",
    "tests/test_autograd.py",
    "tests/test_errors.py",
]
_SMALL_LLAMA = "small or rotate or rotated or unpermuted"

# module (path under tinyllm/, or a folder prefix) -> test runs, fastest-killing first; the most
# specific key wins. Each entry is a pytest argument line; a missing test file is skipped.
TESTS = {
    "autograd/": [
        "tests/test_autograd.py",
        "tests/test_tensor_methods.py",
        *_OPS_TESTS[:5],
        "tests/test_errors.py",
        "tests/test_oracle_gradients.py",
    ],
    "autograd/tensor.py": [
        "tests/test_autograd.py",
        "tests/test_tensor_methods.py",
        "tests/test_torch_tensor_methods.py",
        "tests/test_torch_dtypes_interop.py",
        *_OPS_TESTS[:5],
    ],
    "ops/elementwise.py": ["tests/test_ops_elementwise.py", *_OPS_TESTS],
    "ops/activations.py": ["tests/test_ops_nn.py", "tests/test_kernels_norm_act.py", *_OPS_TESTS],
    "ops/reductions.py": ["tests/test_ops_reductions.py", *_OPS_TESTS],
    "ops/shape.py": ["tests/test_ops_shape.py", *_OPS_TESTS],
    "ops/attention.py": ["tests/test_attention.py", "tests/test_errors.py"],
    "ops/normalization.py": ["tests/test_ops_nn.py", "tests/test_kernels_norm_act.py", *_OPS_TESTS],
    "ops/linalg.py": [
        "tests/test_ops_nn.py",
        "tests/test_kernels_matmul.py",
        *_OPS_TESTS,
        "tests/test_quantized.py -k 'not smollm2'",
    ],
    "ops/losses.py": ["tests/test_ops_nn.py", *_OPS_TESTS],
    "ops/convert.py": ["tests/test_ops_shape.py", *_OPS_TESTS],
    "ops/embedding.py": ["tests/test_ops_nn.py", *_OPS_TESTS],
    "ops/inplace.py": ["tests/test_torch_inplace.py", *_OPS_TESTS],
    "ops/sorting.py": ["tests/test_torch_tensor_methods.py", "tests/test_torch_tensor_dims.py", *_OPS_TESTS],
    "ops/signature.py": ["tests/test_torch_tensor_dims.py", "tests/test_torch_tensor_methods.py", *_OPS_TESTS],
    "ops/random.py": ["tests/test_torch_tensor_methods.py", "tests/test_torch_dtypes_interop.py", *_OPS_TESTS],
    "ops/": [
        *_OPS_TESTS,
        "tests/test_kernels_matmul.py",
        "tests/test_kernels_norm_act.py",
        "tests/test_oracle_gradients.py",
        "tests/test_torch_tensor_methods.py",
        "tests/test_torch_inplace.py",
    ],
    "kernels/attention_cpu.py": ["tests/test_attention.py"],
    "kernels/attention_reference.py": ["tests/test_attention.py"],
    "kernels/matmul_cpu.py": ["tests/test_kernels_matmul.py", "tests/test_ops_nn.py"],
    "kernels/norm_act_cpu.py": ["tests/test_kernels_norm_act.py", "tests/test_ops_nn.py"],
    "kernels/norm_act_reference.py": ["tests/test_kernels_norm_act.py", "tests/test_ops_nn.py"],
    "kernels/adamw_cpu.py": ["tests/test_kernels_fused.py", "tests/test_optim.py"],
    "kernels/adamw_reference.py": ["tests/test_kernels_fused.py", "tests/test_optim.py"],
    "kernels/cross_entropy_cpu.py": ["tests/test_kernels_fused.py", "tests/test_ops_nn.py"],
    "kernels/cross_entropy_reference.py": ["tests/test_kernels_fused.py", "tests/test_ops_nn.py"],
    "kernels/qmatmul_cpu.py": ["tests/test_quantized.py -k 'not smollm2'"],
    "kernels/qmatmul_reference.py": ["tests/test_quantized.py -k 'not smollm2'"],
    "kernels/": [
        "tests/test_kernels_matmul.py",
        "tests/test_kernels_norm_act.py",
        "tests/test_kernels_fused.py",
        "tests/test_kernel_protocol.py",
        "tests/test_attention.py",
        "tests/test_kernels_cuda.py",
        "tests/test_backend.py",
        "tests/test_threading.py",
    ],
    "optim/": ["tests/test_optim.py", "tests/test_torch_optim.py", "tests/test_kernels_fused.py -k adamw"],
    "optim/lr_scheduler.py": ["tests/test_torch_optim.py"],
    "nn/attention.py": [
        "tests/test_nn_modules.py",
        "tests/test_cached_decoding.py",
        "tests/test_attention.py",
        "tests/test_generate.py",
    ],
    "nn/rope.py": [
        "tests/test_oracle_gradients.py -k 'rope or rotary or llama'",
        f"tests/test_llama.py -k '{_SMALL_LLAMA}'",
    ],
    "io/gguf.py": [f"tests/test_llama.py -k '{_SMALL_LLAMA} or gguf'", "tests/test_gguf_tokenizer.py"],
    "io/untrusted.py": ["tests/test_bad_input_files.py", "tests/test_checkpoint.py"],
    "io/": ["tests/test_checkpoint.py", "tests/test_optim.py -k 'checkpoint or state'"],
    "tokenizers/wordpiece.py": ["tests/test_wordpiece.py", "tests/test_wordpiece_hard_cases.py"],
    "tokenizers/gguf_tokenizer.py": ["tests/test_gguf_tokenizer.py"],
    "tokenizers/chat_template.py": ["tests/test_gguf_tokenizer.py", "tests/test_chat.py"],
    "tokenizers/gpt2_tokenizer.py": ["tests/test_gpt2_import.py"],
    "tokenizers/": ["tests/test_tokenizers.py", "tests/test_gguf_tokenizer.py", "tests/test_wordpiece.py"],
}

# the --ci sample: mutants per module; the threshold is on the pooled score
CI_SAMPLE = {"autograd/": 3, "ops/": 3, "optim/": 2, "io/": 1, "tokenizers/": 1}
CI_THRESHOLD = 0.85
FIXED_TIMEOUT = 240.0  # seconds a test run of a mutant may take without a coverage pass to time it
TIMEOUT_FACTOR = 3.0  # with one: this many times the unmutated run, plus 30 s

PRELOAD = [
    "numpy",
    "scipy",
    "torch",
    "numba",
    "hypothesis",
    "hypothesis.extra.numpy",
    "pytest",
    "array_api_strict",
    "safetensors.numpy",
    "transformers",
    "transformers.models.llama.modeling_llama",
    "transformers.models.bert.modeling_bert",
]

_BINOPS = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.MatMult: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
_COMPARES = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_SKIPPED_FIELDS = {"annotation", "returns", "decorator_list", "type_comment"}


@dataclass
class Mutant:
    """One change to one module: where, what, and (after a run) what the tests said."""

    module: str  # path under tinyllm/
    site: int  # index of the node in the module's traversal order
    variant: int  # index of the change among those of the node
    line: int
    last_line: int  # the lines a test must run for the change to matter: line .. last_line
    kind: str
    before: str
    after: str
    status: str = ""  # killed, survived, timeout
    killed_by: str = ""
    seconds: float = 0.0

    @property
    def group(self) -> str:
        return next(g for g in GROUPS if self.module.startswith(g))

    def describe(self) -> str:
        return f"tinyllm/{self.module}:{self.line}: {self.kind}: `{self.before}` -> `{self.after}`"


# -- enumeration ----------------------------------------------------------------------------------
def _nodes(tree: ast.AST):
    """Yield every node that may be mutated, in a fixed (breadth-first) order, skipping
    annotations, decorators, docstrings and f-strings."""
    queue = [tree]
    while queue:
        node = queue.pop(0)
        yield node
        if isinstance(node, ast.JoinedStr):
            continue
        for name, value in ast.iter_fields(node):
            if name in _SKIPPED_FIELDS:
                continue
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, ast.AST) and not _is_docstring(child):
                    queue.append(child)


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _number_variants(value):
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [1 if value == 0 else 0 if value == 1 else value + 1]
    if isinstance(value, float):
        return [1.0 if value == 0.0 else 0.0 if value == 1.0 else value + 1.0]
    return []


def _variants(node: ast.AST) -> list[tuple[str, ast.AST]]:
    """Return the (kind, replacement) changes of one node."""
    out = []
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        out.append(("operator", ast.BinOp(node.left, _BINOPS[type(node.op)](), node.right)))
    elif isinstance(node, ast.AugAssign):
        if type(node.op) in _BINOPS:
            out.append(("operator", ast.AugAssign(node.target, _BINOPS[type(node.op)](), node.value)))
        out.append(("statement removed", ast.Pass()))
    elif isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARES:
        ops = [_COMPARES[type(node.ops[0])](), *node.ops[1:]]
        out.append(("comparison", ast.Compare(node.left, ops, node.comparators)))
    elif isinstance(node, ast.BoolOp):
        out.append(
            ("boolean operator", ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values))
        )
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        out.append(("unary operator removed", node.operand))
    elif isinstance(node, ast.Constant):
        out.extend(("constant", ast.Constant(v)) for v in _number_variants(node.value))
    elif isinstance(node, (ast.If, ast.While)):
        negated = ast.UnaryOp(ast.Not(), node.test)
        out.append(("condition negated", type(node)(negated, node.body, node.orelse)))
    elif isinstance(node, ast.IfExp):
        out.append(("condition negated", ast.IfExp(ast.UnaryOp(ast.Not(), node.test), node.body, node.orelse)))
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            out.append(("return None", ast.Return(ast.Constant(None))))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        out.append(("statement removed", ast.Pass()))
    elif isinstance(node, ast.Assign) and all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets):
        out.append(("statement removed", ast.Pass()))
    if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args):
        first, second = node.args[0], node.args[1]
        if ast.dump(first) != ast.dump(second):
            out.append(("arguments swapped", ast.Call(node.func, [second, first, *node.args[2:]], node.keywords)))
    return out


def _skip_module_level(tree: ast.Module) -> set[int]:
    """Node ids under `__all__ = ...` and `if TYPE_CHECKING:` (changes there are not behaviour)."""
    skipped = set()
    for stmt in tree.body:
        names = [t.id for t in getattr(stmt, "targets", []) if isinstance(t, ast.Name)]
        is_all = "__all__" in names
        is_type_checking = isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
        if is_all or is_type_checking:
            skipped.update(id(n) for n in ast.walk(stmt))
    return skipped


def enumerate_mutants(root: Path, module: str) -> list[Mutant]:
    """Return every mutant of tinyllm/<module>, in a fixed order."""
    source = (root / "tinyllm" / module).read_text()
    tree = ast.parse(source)
    skipped = _skip_module_level(tree)
    mutants = []
    for site, node in enumerate(_nodes(tree)):
        if id(node) in skipped:
            continue
        for variant, (kind, replacement) in enumerate(_variants(node)):
            before, after = _short(node), _short(replacement)
            if kind == "condition negated":
                before, after = _short(node.test), _short(replacement.test)
            if ast.dump(node) != ast.dump(replacement):
                span = node.test if kind == "condition negated" else node
                lines = (span.lineno, span.end_lineno)
                mutants.append(Mutant(module, site, variant, *lines, kind, before, after))
    return mutants


def _short(node: ast.AST, width: int = 70) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def mutated_source(source: str, mutant: Mutant) -> str:
    """Return `source` with the mutant's change: the node's text replaced in place (so line
    numbers stay), or the whole module unparsed where an in-place edit would not parse."""
    tree = ast.parse(source)
    node = list(_nodes(tree))[mutant.site]
    replacement = _variants(node)[mutant.variant][1]
    ast.copy_location(replacement, node)
    ast.fix_missing_locations(replacement)
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    data = source.encode()
    start = offsets[node.lineno - 1] + node.col_offset
    end = offsets[node.end_lineno - 1] + node.end_col_offset
    text = ast.unparse(replacement)
    if isinstance(node, ast.expr):
        text = f"({text})"
    elif "\n" in text:
        indent = " " * node.col_offset
        text = text.replace("\n", "\n" + indent)
    candidate = (data[:start] + text.encode() + data[end:]).decode()
    try:
        ast.parse(candidate)
        return candidate
    except SyntaxError:
        _replace(tree, node, replacement)
        return ast.unparse(tree)


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for name, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, name, new)
                return
            if isinstance(value, list) and any(v is old for v in value):
                value[[i for i, v in enumerate(value) if v is old][0]] = new
                return


def modules_of(root: Path, groups: list[str], with_cuda: bool) -> list[str]:
    """Return the module paths (under tinyllm/) in the given groups."""
    package = root / "tinyllm"
    found = []
    for group in groups:
        paths = [package / group] if group.endswith(".py") else sorted((package / group).rglob("*.py"))
        for path in paths:
            module = path.relative_to(package).as_posix()
            if with_cuda or module not in CUDA_FILES:
                found.append(module)
    return found


def sample(mutants: list[Mutant], per_group: dict[str, int] | None, seed: int) -> list[Mutant]:
    """Return up to per_group[g] mutants of each group g (all when None), in rounds (the first
    of each group, then the second of each, ...): a run cut short still holds an equal sample of
    every group, and a smaller sample is a prefix of a larger one.

    A mutant's rank is a hash of the seed and what the mutant is (module, change, text before and
    after; not its line), so editing one module leaves the sample of the others as it was."""
    drawn = []
    for group in GROUPS:
        ranked = sorted((m for m in mutants if m.group == group), key=lambda m: _rank(m, seed))
        drawn.append(ranked if per_group is None else ranked[: per_group.get(group, 0)])
    rounds = range(max(map(len, drawn), default=0))
    return [chosen[rank] for rank in rounds for chosen in drawn if rank < len(chosen)]


def _rank(mutant: Mutant, seed: int) -> str:
    identity = f"{seed}|{mutant.module}|{mutant.kind}|{mutant.before}|{mutant.after}|{mutant.variant}"
    return hashlib.sha256(identity.encode()).hexdigest()


def tests_for(module: str, copy_root: Path) -> list[str]:
    """Return the pytest argument lines for a module's mutants (most specific key of TESTS)."""
    key = max((k for k in TESTS if module == k or (k.endswith("/") and module.startswith(k))), key=len)
    return [line for line in TESTS[key] if (copy_root / line.split()[0]).exists()]


# -- running ----------------------------------------------------------------------------------------
class _Profile:
    """pytest plugin: after conftest registered its profiles, run the `ci` one derandomized and
    without shrinking."""

    def pytest_configure(self, config):  # noqa: ARG002 - pytest's hook signature
        from hypothesis import Phase, settings

        settings.register_profile(
            "mutation",
            parent=settings.get_profile("ci"),
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            print_blob=False,
        )
        settings.load_profile("mutation")


def run_tests(copy_root: Path, args: list[str], log: Path, timeout: float, coverage_file: Path | None = None):
    """Run pytest with args against the copy in a forked child; return (passed|failed|timeout,
    seconds). With coverage_file, record which test (node id) runs which line of tinyllm."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(copy_root)
            sys.path.insert(0, str(copy_root))
            sys.dont_write_bytecode = True
            import pytest

            plugins = [_Profile()]
            if coverage_file is not None:
                import coverage

                cov = coverage.Coverage(data_file=str(coverage_file), include=[f"{copy_root}/tinyllm/*"])
                plugins.append(_contexts_plugin(cov))
                cov.start()
            import tinyllm

            assert Path(tinyllm.__file__).is_relative_to(copy_root), tinyllm.__file__
            options = ["-x", "-q", "-p", "no:cacheprovider", "--no-header", "-W", "ignore"]
            code = int(pytest.main([*args, *options], plugins=plugins))
            if coverage_file is not None:
                cov.stop()
                cov.save()
        except BaseException:  # noqa: B036 - anything the mutant raises kills it
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = start + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            seconds = time.perf_counter() - start
            # 5: no test collected (e.g. a -k that matches nothing on this tree) counts as passing
            return ("passed" if os.waitstatus_to_exitcode(status) in (0, 5) else "failed"), seconds
        if time.perf_counter() > deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.05)


def _contexts_plugin(cov):
    """A pytest plugin that labels coverage data with the node id of the running test."""
    import pytest

    class Contexts:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_protocol(self, item, nextitem):  # noqa: ARG002 - pytest's hook signature
            cov.switch_context(item.nodeid)
            yield
            cov.switch_context("")

    return Contexts()


class Workspace:
    """A temporary copy of the package and tests that mutants are written into."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tinyllm-mutation-"))
        for name in ["tinyllm", "tests"]:
            shutil.copytree(root / name, self.dir / name, copy_function=shutil.copy2)
        for name in ["pyproject.toml", "setup.cfg", "README.md"]:
            if (root / name).exists():
                shutil.copy2(root / name, self.dir / name)
        self.pristine = Path(tempfile.mkdtemp(prefix="tinyllm-pristine-"))
        shutil.copytree(root / "tinyllm", self.pristine / "tinyllm", copy_function=shutil.copy2)

    def apply(self, mutant: Mutant) -> None:
        target = self.dir / "tinyllm" / mutant.module
        target.write_text(mutated_source((self.pristine / "tinyllm" / mutant.module).read_text(), mutant))

    def restore(self, mutant: Mutant) -> None:
        """Put back the module and the Numba cache files of its folder."""
        module = Path("tinyllm") / mutant.module
        shutil.copy2(self.pristine / module, self.dir / module)
        cache, pristine_cache = self.dir / module.parent / "__pycache__", self.pristine / module.parent / "__pycache__"
        stem = module.stem + "."
        for path in cache.glob(stem + "*"):
            if path.suffix in (".nbi", ".nbc"):
                path.unlink()
        for path in pristine_cache.glob(stem + "*"):
            if path.suffix in (".nbi", ".nbc"):
                shutil.copy2(path, cache / path.name)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.pristine, ignore_errors=True)


class TestSelection:
    """Which tests a mutant runs: with a coverage map (the default), the tests that run one of
    its lines on the unmutated tree, in TESTS order; a line that no test runs kills no mutant,
    so the mutant survives without running anything. Lines run only at import (a default
    argument, a class attribute) and Numba kernels (which coverage cannot see inside) fall back
    to the module's whole TESTS entry, as does everything without a coverage map. In CI
    (`primary_only`) a mutant runs the first test file of its entry only: a lower bound on the
    score, in minutes."""

    def __init__(
        self, workspace: Workspace, mutants: list[Mutant], log_dir: Path, use_coverage: bool, primary_only: bool
    ) -> None:
        self.workspace, self.primary_only = workspace, primary_only
        self.seconds_of: dict[str, float] = {}
        self.covered: dict[str, dict[int, list[str]]] = {}  # module -> line -> node ids
        self.imported: dict[str, set[int]] = {}  # module -> lines run outside any test
        if use_coverage:
            lines = sorted({line for m in mutants for line in tests_for(m.module, workspace.dir)})
            for number, line in enumerate(lines):
                self._measure(line, workspace.dir / f".coverage.{number}", log_dir / "baseline.log")

    def _measure(self, line: str, data_file: Path, log: Path) -> None:
        import coverage

        result, seconds = run_tests(self.workspace.dir, shlex.split(line), log, 3600, coverage_file=data_file)
        if result != "passed":
            sys.exit(f"the unmutated tests fail: {line} (see {log})")
        self.seconds_of[line] = seconds
        print(f"baseline {seconds:6.1f} s  {line}", flush=True)
        data = coverage.CoverageData(basename=str(data_file))
        data.read()
        package = self.workspace.dir / "tinyllm"
        for filename in data.measured_files():
            module = Path(filename).relative_to(package).as_posix()
            for lineno, contexts in data.contexts_by_lineno(filename).items():
                tests = [c for c in contexts if c]
                self.covered.setdefault(module, {}).setdefault(lineno, []).extend(tests)
                if "" in contexts:
                    self.imported.setdefault(module, set()).add(lineno)

    def runs_for(self, mutant: Mutant) -> list[tuple[list[str], float]]:
        """Return the pytest runs (arguments, timeout) for a mutant."""
        lines = tests_for(mutant.module, self.workspace.dir)[: 1 if self.primary_only else None]
        whole = [(shlex.split(line), self._timeout([line])) for line in lines]
        if not self.seconds_of:
            return whole
        span = range(mutant.line, mutant.last_line + 1)
        by_line = self.covered.get(mutant.module, {})
        tests = list(dict.fromkeys(t for n in span for t in by_line.get(n, [])))
        if not tests:
            imported = any(n in self.imported.get(mutant.module, ()) for n in span)
            return whole if imported or mutant.module.startswith("kernels/") else []
        order = {line.split()[0]: rank for rank, line in enumerate(lines)}
        tests.sort(key=lambda t: order.get(t.split("::")[0], len(order)))
        return [(tests, self._timeout(lines))]

    def _timeout(self, lines: list[str]) -> float:
        if not self.seconds_of:
            return FIXED_TIMEOUT
        return TIMEOUT_FACTOR * sum(self.seconds_of.get(line, 60.0) for line in lines) + 30


def run(mutants: list[Mutant], workspace: Workspace, log_dir: Path, use_coverage: bool, ci: bool, save) -> None:
    """Run every mutant's tests and set its status, calling save() after each."""
    selection = TestSelection(workspace, mutants, log_dir, use_coverage, primary_only=ci)
    for number, mutant in enumerate(mutants, 1):
        runs = selection.runs_for(mutant)
        workspace.apply(mutant)
        start = time.perf_counter()
        mutant.status = "survived" if runs else "not run by any test"
        try:
            for args, timeout in runs:
                result, _ = run_tests(workspace.dir, args, log_dir / f"mutant-{number:04d}.log", timeout)
                if result != "passed":
                    mutant.status = "killed" if result == "failed" else "timeout"
                    mutant.killed_by = " ".join(args[:3]) + (" ..." if len(args) > 3 else "")
                    break
        finally:
            workspace.restore(mutant)
        mutant.seconds = time.perf_counter() - start
        print(f"[{number}/{len(mutants)}] {mutant.status:8} {mutant.seconds:5.1f} s  {mutant.describe()}", flush=True)
        save()


def report(mutants: list[Mutant]) -> dict[str, tuple[int, int]]:
    """Print the score per group and the survivors; return {group: (killed, total)}."""
    scores = {}
    print("\n| module | mutants | killed | score |\n|---|---:|---:|---:|")
    for group in GROUPS:
        ran = [m for m in mutants if m.group == group]
        if ran:
            killed = sum(m.status in ("killed", "timeout") for m in ran)
            scores[group] = (killed, len(ran))
            print(f"| {group} | {len(ran)} | {killed} | {killed / len(ran):.0%} |")
    killed = sum(k for k, _ in scores.values())
    total = sum(n for _, n in scores.values())
    print(f"| all | {total} | {killed} | {killed / max(total, 1):.0%} |")
    survivors = [m for m in mutants if m.status not in ("killed", "timeout")]
    if survivors:
        print("\nsurviving mutants:")
        for m in survivors:
            print(f"  {m.describe()}" + ("  (no test runs this line)" if m.status != "survived" else ""))
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to mutate (default: this one)")
    parser.add_argument("--per-module", type=int, default=30, help="mutants sampled per module group")
    parser.add_argument("--all", action="store_true", help="run every mutant instead of a sample")
    parser.add_argument("--only", nargs="+", choices=GROUPS, help="module groups to mutate (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ci", action="store_true", help=f"the CI sample; exit 1 under {CI_THRESHOLD:.0%}")
    parser.add_argument(
        "--no-coverage", action="store_true", help="run each mutant's whole TESTS entry (no coverage pass first)"
    )
    parser.add_argument("--json", type=Path, help="write every mutant and its result here")
    parser.add_argument("--list", action="store_true", help="print the sampled mutants and exit")
    parser.add_argument(
        "--rerun", type=Path, help="run again the mutants that survived in this --json file (whole TESTS entries)"
    )
    parser.add_argument("--logs", type=Path, help="keep the pytest output of every mutant here")
    args = parser.parse_args(argv)

    with_cuda = _has_gpu()
    groups = list(CI_SAMPLE) if args.ci else args.only or GROUPS
    mutants = [m for module in modules_of(args.root, groups, with_cuda) for m in enumerate_mutants(args.root, module)]
    if args.ci:
        per_group = CI_SAMPLE
    else:
        per_group = None if args.all else {group: args.per_module for group in groups}
    chosen = sample(mutants, per_group, args.seed)
    if args.rerun:
        survived = {
            (m["module"], m["kind"], m["before"], m["after"], m["variant"])
            for m in json.loads(args.rerun.read_text())
            if m["status"] not in ("killed", "timeout")
        }
        chosen = [m for m in mutants if (m.module, m.kind, m.before, m.after, m.variant) in survived]
        args.no_coverage = True
    print(f"{len(chosen)} of {len(mutants)} mutants (seed {args.seed}, CUDA kernels {'in' if with_cuda else 'out'})")
    if args.list:
        for m in chosen:
            print("  " + m.describe())
        return 0

    _preload()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated run still removes its copy
    os.environ.update(TINYLLM_HYPOTHESIS_PROFILE="ci", PYTHONDONTWRITEBYTECODE="1")
    workspace = Workspace(args.root)
    log_dir = args.logs or workspace.dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        if args.json:
            args.json.write_text(json.dumps([asdict(m) for m in chosen if m.status], indent=1))

    try:
        run(chosen, workspace, log_dir, not (args.ci or args.no_coverage), args.ci, save)
    finally:
        workspace.close()
    scores = report(chosen)
    if args.ci:
        killed = sum(k for k, _ in scores.values())
        total = sum(n for _, n in scores.values())
        print(f"\nCI: {killed}/{total} killed = {killed / total:.0%} (threshold {CI_THRESHOLD:.0%})")
        return 0 if killed >= CI_THRESHOLD * total else 1
    return 0


def _preload() -> None:
    """Import the libraries every test run needs and compile one tiny Numba function, so that
    each forked child starts with them loaded (Numba's first compile sets up LLVM: seconds)."""
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    import numba
    import numpy

    @numba.njit(cache=False)
    def total(values):
        result = 0.0
        for value in values:
            result += value
        return result

    total(numpy.ones(2))
    numba.vectorize(["float32(float32)"])(lambda value: value + 1)


def _has_gpu() -> bool:
    """Whether numba.cuda finds a GPU, asked in a subprocess: a CUDA context must not exist
    in the process that forks the test runs."""
    import subprocess

    probe = "from numba import cuda; print(cuda.is_available())"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    return result.stdout.strip() == "True"


if __name__ == "__main__":
    sys.exit(main())

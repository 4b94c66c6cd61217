"""The computational graph behind a tensor, as Graphviz DOT text, and rendered where `dot` exists.

    y = (a * b + a).sum()
    print(to_dot(y))                 # always works: plain text
    render(y, "graph.svg")           # .dot, .svg or .png; the last two need Graphviz's `dot`

Each node is a tensor: an op's result is labelled with the op (its `Function` class), a leaf with
its name if one is given (`names={"a": a}`); both show shape and dtype. Tensors that need a
gradient are drawn in blue and solid, constants in grey and dashed, so one sees where gradients
flow. Edges point from an op's inputs to its result, the direction of the forward pass.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import ArgumentError, GraphError, UnsupportedError
from tinyllm.validate import check_choice


@dataclass(frozen=True)
class GraphNode:
    """One tensor of a graph: `op` is the Function's name, or None for a leaf."""

    key: int
    op: str | None
    name: str | None
    shape: tuple
    dtype: str
    requires_grad: bool

    @property
    def label(self) -> str:
        title = self.op or self.name or "leaf"
        if self.op and self.name:
            title = f"{self.name} = {self.op}"
        shape = "(" + ", ".join(str(n) for n in self.shape) + ("," if len(self.shape) == 1 else "") + ")"
        return f"{title}\\n{shape} {self.dtype}" + ("\\ngrad" if self.requires_grad else "")


def graph_of(tensor: Tensor, names: dict[str, Tensor] | None = None) -> tuple[list[GraphNode], list[tuple[int, int]]]:
    """Return (nodes, edges) of the graph that computed tensor: nodes in reverse order of discovery
    from the output (inputs before the ops that use them), edges (input key, result key), one per
    use of an input (x * x gives two edges).

    GraphError if a backward pass already freed the graph (keep it with `retain_graph=True`).
    """
    label_of = {id(t): name for name, t in (names or {}).items()}
    nodes: dict[int, GraphNode] = {}
    edges: list[tuple[int, int]] = []
    stack = [tensor]
    while stack:  # iterative: a graph of 10,000 ops needs no recursion
        t = stack.pop()
        if id(t) in nodes:
            continue
        fn = t.grad_fn
        if fn is not None and fn.released:
            raise GraphError("this graph was freed by backward(); call backward(retain_graph=True) to draw it after")
        op = None if fn is None else type(fn).__name__
        nodes[id(t)] = GraphNode(id(t), op, label_of.get(id(t)), t.shape, t.dtype, t.requires_grad)
        for parent in () if fn is None else fn.inputs:
            edges.append((id(parent), id(t)))
            stack.append(parent)
    return list(reversed(nodes.values())), list(reversed(edges))


def to_dot(tensor: Tensor, names: dict[str, Tensor] | None = None, rankdir: str = "LR") -> str:
    """Return the Graphviz DOT source of tensor's graph (see the module docstring for the style);
    rankdir "LR" lays the forward pass out left to right, "TB" top to bottom."""
    nodes, edges = graph_of(tensor, names)
    lines = [
        "digraph tinyllm {",
        f"  rankdir={check_choice('rankdir', rankdir, ('LR', 'TB'))};",
        '  node [fontname="Helvetica", fontsize=11, shape=box, style=rounded];',
    ]
    for node in nodes:
        color = "#1f77b4" if node.requires_grad else "#7f7f7f"
        style = "rounded" if node.requires_grad else "rounded,dashed"
        shape = "box" if node.op else "ellipse"
        lines.append(
            f'  n{node.key} [label="{node.label}", shape={shape}, color="{color}", fontcolor="{color}", style="{style}"];'
        )
    lines += [f"  n{src} -> n{dst};" for src, dst in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def dot_available() -> bool:
    """Return whether Graphviz's `dot` program is on the PATH."""
    return shutil.which("dot") is not None


def render(tensor_or_dot: Tensor | str, path, names: dict[str, Tensor] | None = None, rankdir: str = "LR") -> Path:
    """Write the graph to path: DOT text for `.dot`, an image rendered by `dot` for `.svg`/`.png`.
    Return the path. UnsupportedError if an image is asked for and `dot` is not installed."""
    path = Path(path)
    source = tensor_or_dot if isinstance(tensor_or_dot, str) else to_dot(tensor_or_dot, names, rankdir)
    suffix = path.suffix.lower()
    if suffix == ".dot":
        path.write_text(source)
        return path
    if suffix not in (".svg", ".png"):
        raise ArgumentError(f"graph output {path}: expected a .dot, .svg or .png file")
    if not dot_available():
        raise UnsupportedError(
            f"rendering {path} needs Graphviz's `dot` (apt-get install graphviz); write a .dot file instead"
        )
    extra = ["-Gdpi=110"] if suffix == ".png" else []
    subprocess.run(["dot", f"-T{suffix[1:]}", *extra, "-o", str(path)], input=source.encode(), check=True)
    return path

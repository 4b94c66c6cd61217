"""Pictures of what a model computes: attention maps, token pieces, heatmaps (embeddings,
positional encodings), per-layer gradient norms, the logit lens, and curves.

Every function returns a matplotlib `Figure` and writes it to `path` when one is given (PNG, SVG
or PDF by the file's suffix). Figures are built on matplotlib's object API with the Agg canvas,
never `pyplot`: importing this module selects no GUI backend and keeps no global figure state.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.errors import ShapeError
from tinyllm.models.inspect import logit_lens


def _array(x):
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def _finish(fig: Figure, path) -> Figure:
    FigureCanvasAgg(fig)
    if path is not None:
        fig.savefig(Path(path), dpi=fig.dpi, bbox_inches="tight")
    return fig


def _short(token: str, width: int = 10) -> str:
    """Return a token as a readable tick label: spaces and newlines made visible, long ones cut."""
    shown = token.replace("\n", "\\n").replace(" ", "·")
    return shown if len(shown) <= width else shown[: width - 1] + "…"


def plot_attention(pattern, tokens: list[str], title: str = "attention", heads=None, path=None) -> Figure:
    """Return a grid of attention maps, one per head, for pattern (H, T, Tk) or (B=1, H, T, Tk):
    row = query token, column = key token, colour = probability (each row sums to 1)."""
    pattern = _array(pattern)
    if pattern.ndim == 4:
        pattern = pattern[0]
    if pattern.ndim != 3 or pattern.shape[1] != len(tokens) or pattern.shape[2] < len(tokens):
        raise ShapeError(f"plot_attention: pattern {pattern.shape} does not fit {len(tokens)} tokens (H, T, T)")
    heads = list(range(pattern.shape[0])) if heads is None else list(heads)
    cols = min(len(heads), 4)
    rows = math.ceil(len(heads) / cols)
    size = 0.22 * len(tokens) + 1.4
    fig = Figure(figsize=(cols * size + 0.8, rows * size + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    labels = [_short(t) for t in tokens]
    image = None
    for ax, head in zip(axes.flat, heads):
        image = ax.imshow(pattern[head], vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_title(f"head {head}", fontsize=10)
        ax.set_xticks(range(len(tokens)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(tokens)), labels, fontsize=7)
    for ax in list(axes.flat)[len(heads) :]:
        ax.axis("off")
    axes[0, 0].set_ylabel("query")
    axes[-1, 0].set_xlabel("key")
    fig.colorbar(image, ax=axes, shrink=0.8, label="probability")
    fig.suptitle(title)
    return _finish(fig, path)


def plot_tokens(pieces: list[str], title: str = "tokens", ids: list[int] | None = None, per_line: int = 12, path=None):
    """Return the token pieces of a text drawn as coloured boxes in reading order, ids below."""
    lines = math.ceil(len(pieces) / per_line) or 1
    fig = Figure(figsize=(min(per_line, max(len(pieces), 1)) * 0.95 + 0.4, 0.75 * lines + 0.5), dpi=100)
    ax = fig.add_axes((0, 0, 1, 0.85))
    ax.set_xlim(0, min(per_line, max(len(pieces), 1)))
    ax.set_ylim(-lines, 0)
    ax.axis("off")
    palette = ["#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d"]
    for i, piece in enumerate(pieces):
        x, y = i % per_line, -(i // per_line)
        ax.add_patch(_box(x, y, palette[i % len(palette)]))
        ax.text(x + 0.475, y - 0.3, _short(piece), ha="center", va="center", fontsize=9, family="monospace")
        if ids is not None:
            ax.text(x + 0.475, y - 0.62, str(ids[i]), ha="center", va="center", fontsize=7, color="#444444")
    fig.suptitle(f"{title} ({len(pieces)} tokens)", fontsize=11)
    return _finish(fig, path)


def _box(x: float, y: float, color: str) -> FancyBboxPatch:
    return FancyBboxPatch((x + 0.04, y - 0.82), 0.87, 0.74, boxstyle="round,pad=0.02", fc=color, ec="#555555")


def plot_heatmap(matrix, title: str, xlabel: str, ylabel: str, path=None, cmap: str = "RdBu_r") -> Figure:
    """Return a heatmap of a 2-D array (an embedding table, a positional encoding), colour
    centred on zero."""
    matrix = _array(matrix)
    if matrix.ndim != 2:
        raise ShapeError(f"plot_heatmap needs a 2-D array, got shape {matrix.shape}")
    limit = float(np.abs(matrix).max()) or 1.0
    fig = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.colorbar(image, ax=ax, label="value")
    return _finish(fig, path)


def plot_curves(
    curves: dict[str, tuple], title: str, xlabel: str, ylabel: str, path=None, logy: bool = False, logx: bool = False
) -> Figure:
    """Return line plots of {label: (xs, ys)} on one axis (loss curves, timings)."""
    fig = Figure(figsize=(6.4, 3.8), dpi=100, layout="constrained")
    ax = fig.subplots()
    for label, (xs, ys) in curves.items():
        ax.plot(_array(xs), _array(ys), marker="o" if len(_array(xs)) <= 12 else None, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, path)


def gradient_norms(model) -> dict[str, float]:
    """Return {group: L2 norm of the gradients} after a backward pass, one group per block
    (`h.0`, `layers.3`, ...) and one per other top-level module (`wte`, `ln_f`, ...)."""
    squares: dict[str, float] = {}
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        parts = name.split(".")
        group = ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]
        squares[group] = squares.get(group, 0.0) + float((param.grad.numpy().astype("float64") ** 2).sum())
    return {group: math.sqrt(total) for group, total in squares.items()}


def plot_gradient_norms(history: list[dict[str, float]], title: str = "gradient norm per layer", path=None) -> Figure:
    """Return the gradient norm of each group over training steps, from a list of
    `gradient_norms(model)` (one per step), on a log scale."""
    groups = list(history[0]) if history else []
    steps = list(range(1, len(history) + 1))
    fig = Figure(figsize=(6.4, 3.8), dpi=100, layout="constrained")
    ax = fig.subplots()
    for group in groups:
        ax.plot(steps, [norms.get(group, float("nan")) for norms in history], label=group)
    ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("‖gradient‖₂")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _finish(fig, path)


def plot_logit_lens(
    top_tokens: list[list[str]], top_probs, input_tokens: list[str], title: str = "logit lens", path=None
) -> Figure:
    """Return the logit-lens table: row = layer, column = input position; each cell names the
    token that layer's residual stream predicts next and is coloured by its probability.

    top_tokens (L, T) strings and top_probs (L, T), e.g. from `tinyllm.viz.logit_lens_table`."""
    top_probs = _array(top_probs)
    n_layer, length = top_probs.shape
    fig = Figure(figsize=(1.05 * length + 1.6, 0.28 * n_layer + 1.4), dpi=100, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(top_probs, aspect="auto", cmap="Blues", vmin=0.0, vmax=1.0)
    for layer in range(n_layer):
        for t in range(length):
            color = "white" if top_probs[layer, t] > 0.6 else "black"
            ax.text(t, layer, _short(top_tokens[layer][t], 8), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(length), [_short(t) for t in input_tokens], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n_layer), [str(i) for i in range(n_layer)], fontsize=7)
    ax.set_xlabel("input token (the prediction is for the token after it)")
    ax.set_ylabel("layer")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="probability of the top token")
    return _finish(fig, path)


def logit_lens_table(model, tokenizer, ids: list[int]) -> tuple[list[list[str]], object, list[str]]:
    """Return (top_tokens (L, T) strings, top_probs (L, T) array, input tokens) of the logit lens
    of a decoder on one sequence: at each layer and position, the most probable next token after
    the final norm and output head, and its probability."""
    lens = logit_lens(model, Tensor([ids])).numpy()[:, 0]  # (L, T, V)
    lens = lens - lens.max(axis=-1, keepdims=True)
    probs = np.exp(lens)
    probs /= probs.sum(axis=-1, keepdims=True)  # (L, T, V)
    top = probs.argmax(axis=-1)  # (L, T)
    top_probs = np.take_along_axis(probs, top[..., None], axis=-1)[..., 0]  # (L, T)
    top_tokens = [[tokenizer.decode([int(i)]) for i in row] for row in top]
    return top_tokens, top_probs, [tokenizer.decode([i]) for i in ids]


def token_pieces(tokenizer, text: str) -> tuple[list[str], list[int]]:
    """Return (pieces, ids) of text: WordPiece's sub-words (`##` marks a continuation), or for the
    other tokenizers each id decoded on its own (a byte-level piece that is part of one
    character shows as the replacement character)."""
    if hasattr(tokenizer, "tokenize"):  # WordPiece
        pieces = tokenizer.tokenize(text)
        return pieces, tokenizer.convert_tokens_to_ids(pieces)
    ids = tokenizer.encode(text)
    return [tokenizer.decode([i]) for i in ids], ids

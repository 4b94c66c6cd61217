"""Pictures of the engine and its models: computational graphs (Graphviz DOT, rendered by `dot`
where installed) and matplotlib figures of attention, tokens, embeddings, gradients and the
logit lens. `tinyllm viz ...` draws them from the command line."""

from tinyllm.viz.graph import dot_available, graph_of, render, to_dot
from tinyllm.viz.plots import (
    gradient_norms,
    logit_lens_table,
    plot_attention,
    plot_curves,
    plot_gradient_norms,
    plot_heatmap,
    plot_logit_lens,
    plot_tokens,
    token_pieces,
)

__all__ = [
    "dot_available", "gradient_norms", "graph_of", "logit_lens_table", "plot_attention", "plot_curves",
    "plot_gradient_norms", "plot_heatmap", "plot_logit_lens", "plot_tokens", "render", "to_dot", "token_pieces",
]  # fmt: skip

"""tinyllm.viz: the graph of an expression has exactly its ops and edges (in the DOT text and
when rendered by Graphviz), the plots show the arrays they are given, and `tinyllm viz` writes
its files."""

import re
import shutil
from collections import Counter

import numpy as np
import pytest

import tinyllm as tl
from tinyllm.cli.main import main
from tinyllm.errors import GraphError, UnsupportedError
from tinyllm.models import GPT, GPTConfig
from tinyllm.nn import functional as F
from tinyllm.viz import (
    gradient_norms,
    graph_of,
    logit_lens_table,
    plot_attention,
    plot_gradient_norms,
    plot_heatmap,
    plot_logit_lens,
    plot_tokens,
    render,
    to_dot,
    token_pieces,
)
from tinyllm.viz import graph as graph_module

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parse_dot(source: str) -> tuple[dict[str, str], Counter]:
    """Return ({node id: first label line}, Counter of (source label, target label) edges)."""
    labels = {node: label.split("\\n")[0] for node, label in re.findall(r'(n\d+) \[label="([^"]*)"', source)}
    edges = Counter((labels[a], labels[b]) for a, b in re.findall(r"(n\d+) -> (n\d+);", source))
    return labels, edges


def expression():
    a = tl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = tl.tensor([0.5, -1.0], requires_grad=True)
    c = tl.tensor([[2.0], [3.0]])  # a constant: no gradient
    return a, b, c, ((a * b + a) * c).sum()


def test_graph_of_an_expression_has_exactly_its_ops_and_edges():
    a, b, c, y = expression()
    labels, edges = parse_dot(to_dot(y, names={"a": a, "b": b, "c": c}))
    assert Counter(labels.values()) == Counter({"a": 1, "b": 1, "c": 1, "Mul": 2, "Add": 1, "Sum": 1})
    assert edges == Counter(
        {("a", "Mul"): 1, ("b", "Mul"): 1, ("Mul", "Add"): 1, ("a", "Add"): 1, ("Add", "Mul"): 1,
         ("c", "Mul"): 1, ("Mul", "Sum"): 1}
    )  # fmt: skip
    nodes, edge_keys = graph_of(y)
    assert len(nodes) == 7 and len(edge_keys) == 7
    by_key = {node.key: node for node in nodes}
    assert by_key[id(c)].requires_grad is False and by_key[id(a)].requires_grad is True
    assert by_key[id(y)].shape == () and by_key[id(y)].dtype == "float32"


def test_a_tensor_used_twice_gives_two_edges_and_a_leaf_alone_is_one_node():
    x = tl.tensor([1.0, 2.0], requires_grad=True)
    _, edges = parse_dot(to_dot(x * x, names={"x": x}))
    assert edges == Counter({("x", "Mul"): 2})
    labels, edges = parse_dot(to_dot(x, names={"x": x}))
    assert list(labels.values()) == ["x"] and not edges


def test_dot_labels_show_shape_dtype_and_gradient_and_constants_are_dashed():
    a, b, c, y = expression()
    source = to_dot(y, names={"a": a, "c": c})
    assert re.search(r'label="a\\n\(2, 2\) float32\\ngrad"', source)
    assert re.search(r'label="c\\n\(2, 1\) float32", shape=ellipse, color="#7f7f7f"[^\n]*dashed', source)
    assert re.search(r'label="Sum\\n\(\) float32\\ngrad"', source)


def test_a_graph_freed_by_backward_cannot_be_drawn_unless_retained():
    a, b, c, y = expression()
    y.backward(retain_graph=True)
    assert "Sum" in to_dot(y)
    y.backward()
    with pytest.raises(GraphError, match="retain_graph"):
        to_dot(y)


def test_a_deep_graph_is_walked_without_recursion():
    x = tl.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    nodes, edges = graph_of(y)  # each Mul: the previous result and the constant 1.0
    assert len(edges) == 10000 and len(nodes) == 10001


def test_render_writes_dot_without_graphviz_and_refuses_images(tmp_path, monkeypatch):
    a, b, c, y = expression()
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    assert render(y, tmp_path / "g.dot").read_text() == to_dot(y)
    with pytest.raises(UnsupportedError, match="graphviz"):
        render(y, tmp_path / "g.png")


def test_render_draws_svg_and_png_with_graphviz(tmp_path):
    assert shutil.which("dot"), "Graphviz's dot is needed (scripts/install_system_deps.sh installs it)"
    a, b, c, y = expression()
    svg = render(y, tmp_path / "g.svg", names={"a": a, "b": b, "c": c}).read_text()
    assert svg.count('class="node"') == 7 and svg.count('class="edge"') == 7
    assert ">Add</text>" in svg and ">Sum</text>" in svg
    assert render(y, tmp_path / "g.png").read_bytes()[:8] == PNG_MAGIC


def test_attention_plot_shows_each_heads_pattern(tmp_path):
    pattern = np.random.default_rng(0).dirichlet(np.ones(5), size=(3, 5)).astype("float32")  # (H, T, T)
    fig = plot_attention(pattern, ["a", "b", "c", "d", "e"], title="test", path=tmp_path / "a.png")
    images = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert len(images) == 3
    for head, image in enumerate(images):
        np.testing.assert_array_equal(np.asarray(image), pattern[head])
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC


def test_token_plot_and_heatmap_show_their_inputs():
    fig = plot_tokens(["Hel", "lo", " world"], ids=[1, 2, 3])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["Hel", "1", "lo", "2", "·world", "3"]
    table = np.arange(12.0).reshape(3, 4) - 5
    fig = plot_heatmap(table, "t", "x", "y")
    np.testing.assert_array_equal(np.asarray(fig.axes[0].get_images()[0].get_array()), table)


def test_token_pieces_reassemble_the_text():
    from tinyllm.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.from_text("hello world")
    pieces, ids = token_pieces(tokenizer, "hello")
    assert "".join(pieces) == "hello" and ids == tokenizer.encode("hello")


def test_gradient_norms_group_parameters_by_block():
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=2, n_head=2, n_embd=8))
    ids = tl.tensor([[1, 2, 3, 4]])
    F.cross_entropy(model(ids).reshape(4, 10), tl.tensor([2, 3, 4, 5])).backward()
    norms = gradient_norms(model)
    assert set(norms) == {"wte", "wpe", "h.0", "h.1", "ln_f"}
    expected = np.sqrt(
        sum((p.grad.numpy().astype("float64") ** 2).sum() for n, p in model.named_parameters() if n.startswith("h.1."))
    )
    assert norms["h.1"] == pytest.approx(expected)
    fig = plot_gradient_norms([norms, norms])
    assert [line.get_label() for line in fig.axes[0].get_lines()] == list(norms)


def test_logit_lens_table_ends_with_the_models_own_prediction():
    from tinyllm.tokenizers import CharTokenizer

    tokenizer = CharTokenizer.from_text("abcdefghij")
    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=3, n_head=2, n_embd=8)).eval()
    ids = tokenizer.encode("abcab")
    top_tokens, top_probs, inputs = logit_lens_table(model, tokenizer, ids)
    with tl.no_grad():
        probs = F.softmax(model(tl.tensor([ids])), axis=-1).numpy()[0]  # (T, V)
    assert inputs == list("abcab") and len(top_tokens) == 3
    assert top_tokens[-1] == [tokenizer.decode([int(i)]) for i in probs.argmax(-1)]
    np.testing.assert_allclose(top_probs[-1], probs.max(-1), atol=1e-6)
    fig = plot_logit_lens(top_tokens, top_probs, inputs)
    assert len(fig.axes[0].texts) == 3 * 5


def test_cli_viz_graph_writes_dot_and_png(tmp_path, capsys):
    assert main(["viz", "graph", "--out", str(tmp_path / "g.dot")]) == 0
    labels, edges = parse_dot((tmp_path / "g.dot").read_text())
    assert Counter(labels.values())["ScaledDotProductAttention"] == 1
    assert ("ScaledDotProductAttention", "Permute") in edges and "CrossEntropy" in labels.values()
    assert main(["viz", "graph", "--tokens", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG_MAGIC

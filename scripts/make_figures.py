"""Regenerate every picture of the course (docs/figures/*.png) with tinyllm.viz.

    python scripts/make_figures.py            # all of them (a few minutes on 2 cores)
    python scripts/make_figures.py 05 08      # only the figures whose names start so

The measured figures (05: attention memory, 08: KV-cache timing) are measured on the machine
that runs the script; the training figure (07) comes from a short run of chapter 7's loop.
The loss curve that chapter 7 shows is benchmarks/results/convergence.png, written by
benchmarks/convergence.py.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import kernels
from tinyllm.hub import download

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"


def graph() -> None:
    from tinyllm.viz import render

    a = tl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = tl.tensor([0.5, -1.0], requires_grad=True)
    c = tl.tensor([[2.0], [3.0]])
    y = ((a * b + a) * c).sum()
    render(y, FIGURES / "01-graph.png", names={"a": a, "b": b, "c": c, "y": y})


def tokens() -> None:
    from tinyllm.io.gguf import read_gguf
    from tinyllm.tokenizers.gguf_tokenizer import GGUFTokenizer
    from tinyllm.viz import plot_tokens, token_pieces

    tokenizer = GGUFTokenizer.from_gguf(read_gguf(download("smollm2") / SMOLLM2, architectures=("llama",)))
    pieces, ids = token_pieces(tokenizer, "Tokenizers split unbelievably rare words, but not common ones.")
    plot_tokens(pieces, title="SmolLM2's BPE", ids=ids, per_line=8, path=FIGURES / "03-tokens.png")


def positional() -> None:
    from tinyllm.nn.positional import sinusoidal_table
    from tinyllm.viz import plot_heatmap

    plot_heatmap(
        sinusoidal_table(128, 64),
        "sinusoidal positional encoding (128 positions, 64 channels)",
        "channel (even: sin, odd: cos; slower clocks to the right)",
        "position",
        path=FIGURES / "04-positional.png",
    )


def attention_memory() -> None:
    from tinyllm.viz import plot_curves

    lengths, peaks = [128, 256, 512, 1024, 2048], {"reference": [], "numba": []}
    for length in lengths:
        x = tl.randn(1, 4, length, 32)
        for name in peaks:
            with kernels.use(attention=name):
                F.scaled_dot_product_attention(x, x, x, is_causal=True)  # warm-up and JIT
                tracemalloc.start()
                F.scaled_dot_product_attention(x, x, x, is_causal=True)
                peaks[name].append(tracemalloc.get_traced_memory()[1] / 1e6)
                tracemalloc.stop()
    plot_curves(
        {
            "reference (stores T×T scores)": (lengths, peaks["reference"]),
            "fused Numba (online softmax)": (lengths, peaks["numba"]),
        },
        "peak memory of one causal attention forward (B=1, H=4, D=32, float32)",
        "sequence length T",
        "MB allocated",
        logx=True,
        logy=True,
        path=FIGURES / "05-attention-memory.png",
    )


def attention_minilm() -> None:
    from tinyllm.models import BERT
    from tinyllm.models.inspect import run_with_cache
    from tinyllm.viz import plot_attention

    model = BERT.from_pretrained(download("minilm"))
    batch = model.tokenizer(["The cat sat on the mat because it was tired."], return_tensors="tl")
    _, cache = run_with_cache(model, batch.input_ids, names=["blocks.0.attn.pattern"])
    tokens = model.tokenizer.convert_ids_to_tokens(batch.input_ids.numpy()[0].tolist())
    title = "MiniLM, layer 0: attention of each query token (row) to each key token (column)"
    plot_attention(cache["blocks.0.attn.pattern"], tokens, title=title, path=FIGURES / "06-attention-minilm.png")


def gradient_norms() -> None:
    from tinyllm.data import BatchSampler, Corpus, load_text
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.optim import AdamW, WarmupCosine, clip_grad_norm, set_lr, weight_decay_groups
    from tinyllm.tokenizers import CharTokenizer
    from tinyllm.viz import gradient_norms as norms_of
    from tinyllm.viz import plot_gradient_norms

    text = load_text()
    tokenizer = CharTokenizer.from_text(text)
    corpus = Corpus.from_text(text, tokenizer)
    tl.manual_seed(1337)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=4, n_head=2, n_embd=48))
    optimizer = AdamW(weight_decay_groups(model, 0.1), lr=3e-3, betas=(0.9, 0.99))
    schedule = WarmupCosine(3e-3, 20, 300, 3e-4)
    sampler = BatchSampler(corpus.train, batch_size=16, block_size=32, seed=0)
    history = []
    for step in range(300):
        set_lr(optimizer, schedule(step))
        x, y = sampler.next()
        loss = F.cross_entropy(model(tl.tensor(x)).reshape(-1, tokenizer.vocab_size), tl.tensor(y.reshape(-1)))
        optimizer.zero_grad()
        loss.backward()
        history.append(norms_of(model))
        clip_grad_norm(model.parameters(), 1.0)
        optimizer.step()
    title = "gradient norm per block, 4-layer char GPT, 300 AdamW steps"
    plot_gradient_norms(history, title=title, path=FIGURES / "07-gradient-norms.png")


def kv_cache() -> None:
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.viz import plot_curves

    tl.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=256, n_layer=4, n_head=4, n_embd=128)).eval()
    lengths, per_token = [16, 32, 64, 128, 224], {True: [], False: []}
    model.generate([1], 4)  # warm-up
    for n in lengths:
        for use_cache in per_token:
            start = time.perf_counter()
            model.generate([1], n, temperature=0, use_cache=use_cache)
            per_token[use_cache].append((time.perf_counter() - start) / n * 1e3)
    plot_curves(
        {
            "with KV cache": (lengths, per_token[True]),
            "without cache (recompute all positions)": (lengths, per_token[False]),
        },
        "greedy generation, 4-layer GPT (128 wide): mean time per token",
        "tokens generated",
        "ms per token",
        path=FIGURES / "08-kv-cache.png",
    )


def logit_lens() -> None:
    from tinyllm.models.llama import Llama
    from tinyllm.viz import logit_lens_table, plot_logit_lens

    model = Llama.from_gguf(download("smollm2") / SMOLLM2)
    text = "The capital of France is"
    ids = model.tokenizer.encode(text)
    top_tokens, top_probs, inputs = logit_lens_table(model, model.tokenizer, ids)
    title = f"SmolLM2 logit lens on {text!r}: each layer's top next token"
    plot_logit_lens(top_tokens, top_probs, inputs, title=title, path=FIGURES / "10-logit-lens.png")


MAKERS = {
    "01-graph": graph,
    "03-tokens": tokens,
    "04-positional": positional,
    "05-attention-memory": attention_memory,
    "06-attention-minilm": attention_minilm,
    "07-gradient-norms": gradient_norms,
    "08-kv-cache": kv_cache,
    "10-logit-lens": logit_lens,
}


def main(prefixes: list[str]) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    for name, make in MAKERS.items():
        if not prefixes or any(name.startswith(prefix) for prefix in prefixes):
            start = time.perf_counter()
            make()
            print(f"{FIGURES / name}.png  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])

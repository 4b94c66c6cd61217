"""`tinyllm viz`: pictures of the engine and of a model at work, written to PNG or SVG.

    tinyllm viz graph --out graph.svg                      # the autograd graph of a 1-layer GPT's loss
    tinyllm viz attention --model smollm2 --text "The cat sat on the mat" --layer 3 --out attn.png
    tinyllm viz attention --model minilm --text "The bank of the river" --out attn.png
    tinyllm viz tokens --model smollm2 --text "Tokenizers split unusual words" --out tokens.png
    tinyllm viz logit-lens --model smollm2 --text "The capital of France is" --out lens.png

A trained GPT is named with --checkpoint DIR instead of --model. `graph` writes DOT text for a
.dot file without needing anything else; .svg and .png need Graphviz's `dot`.
"""

from __future__ import annotations

MODELS = ("smollm2", "minilm")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "viz", help="draw graphs, attention maps, tokens, the logit lens", description=__doc__
    )
    kinds = parser.add_subparsers(dest="kind", required=True)

    graph = kinds.add_parser("graph", help="the autograd graph of a GPT's loss (DOT, SVG or PNG)")
    graph.add_argument(
        "--checkpoint", metavar="DIR", default=None, help="a trained GPT (default: a random 1-layer GPT)"
    )
    graph.add_argument("--tokens", type=int, default=8, help="sequence length of the forward pass (default 8)")
    graph.add_argument("--out", required=True, help="output file: .dot, .svg or .png")
    graph.set_defaults(func=run_graph)

    for name, help_text, func in (
        ("attention", "attention maps of one layer, one panel per head", run_attention),
        ("tokens", "the token pieces of a text", run_tokens),
        ("logit-lens", "each layer's next-token guess at every position", run_logit_lens),
    ):
        sub = kinds.add_parser(name, help=help_text)
        source = sub.add_mutually_exclusive_group(required=True)
        source.add_argument("--model", choices=MODELS if name != "logit-lens" else ("smollm2",))
        source.add_argument("--checkpoint", metavar="DIR", help="a GPT trained with `tinyllm train`")
        sub.add_argument("--text", required=True)
        if name == "attention":
            sub.add_argument("--layer", type=int, default=0, help="which layer (default 0)")
        sub.add_argument("--out", required=True, help="output image (.png or .svg)")
        sub.set_defaults(func=func)


def _load(args):
    """Return (model, tokenizer) named by --model or --checkpoint."""
    if args.checkpoint is not None:
        from tinyllm.train import load_trained

        model, tokenizer, _ = load_trained(args.checkpoint)
        return model, tokenizer
    from tinyllm.hub import download

    if args.model == "minilm":
        from tinyllm.models import BERT

        model = BERT.from_pretrained(download("minilm")).eval()
        return model, model.tokenizer
    from tinyllm.cli.chat import load_pretrained

    return load_pretrained("smollm2")


def run_graph(args) -> int:
    import tinyllm as tl
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.nn import functional as F
    from tinyllm.validate import check_int
    from tinyllm.viz import render

    check_int("--tokens", args.tokens, minimum=2)
    if args.checkpoint is not None:
        from tinyllm.train import load_trained

        model = load_trained(args.checkpoint)[0]
    else:
        tl.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=16, block_size=args.tokens, n_layer=1, n_head=2, n_embd=8))
    model.train()
    vocab = model.config.vocab_size
    ids = tl.tensor([[i % vocab for i in range(args.tokens + 1)]])
    logits = model(ids[:, :-1])  # (1, T, V)
    loss = F.cross_entropy(logits.reshape(args.tokens, vocab), ids[0, 1:])
    print(render(loss, args.out, names={name: p for name, p in model.named_parameters()}))
    return 0


def run_attention(args) -> int:
    from tinyllm.autograd.tensor import Tensor
    from tinyllm.models.inspect import run_with_cache
    from tinyllm.validate import check_int
    from tinyllm.viz import plot_attention, token_pieces

    model, tokenizer = _load(args)
    pieces, ids = token_pieces(tokenizer, args.text)
    if args.model == "minilm":  # BERT sees [CLS] ... [SEP]
        ids = tokenizer.encode(args.text)
        pieces = tokenizer.convert_ids_to_tokens(ids)
    n_layer = len(model.h) if hasattr(model, "h") else len(model.layers)
    layer = check_int("--layer", args.layer, minimum=0, maximum=n_layer - 1)
    name = f"blocks.{layer}.attn.pattern"
    _, cache = run_with_cache(model, Tensor([ids]), names=[name])
    title = f"{args.model or 'GPT'}: attention of layer {layer}"
    plot_attention(cache[name], pieces, title=title, path=args.out)
    print(args.out)
    return 0


def run_tokens(args) -> int:
    from tinyllm.viz import plot_tokens, token_pieces

    if args.checkpoint is not None:
        from tinyllm.train import load_trained

        tokenizer = load_trained(args.checkpoint)[1]
    elif args.model == "minilm":
        from tinyllm.hub import download
        from tinyllm.tokenizers import WordPieceTokenizer

        tokenizer = WordPieceTokenizer.from_file(download("minilm") / "vocab.txt")
    else:  # the tokenizer alone, without dequantizing the weights
        from tinyllm.cli.chat import PRETRAINED
        from tinyllm.hub import download
        from tinyllm.io.gguf import read_gguf
        from tinyllm.tokenizers.gguf_tokenizer import GGUFTokenizer

        asset, filename = PRETRAINED["smollm2"]
        tokenizer = GGUFTokenizer.from_gguf(read_gguf(download(asset) / filename, architectures=("llama",)))
    pieces, ids = token_pieces(tokenizer, args.text)
    plot_tokens(pieces, title=f"{args.model or 'checkpoint'} tokens", ids=ids, path=args.out)
    print(args.out)
    return 0


def run_logit_lens(args) -> int:
    from tinyllm.viz import logit_lens_table, plot_logit_lens

    model, tokenizer = _load(args)
    ids = tokenizer.encode(args.text)
    top_tokens, top_probs, inputs = logit_lens_table(model, tokenizer, ids)
    plot_logit_lens(top_tokens, top_probs, inputs, title=f"logit lens: {args.text!r}", path=args.out)
    print(args.out)
    return 0

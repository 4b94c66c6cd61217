"""`tinyllm pretrain-mlm`: pretrain a small BERT from scratch with the masked-LM objective.

    tinyllm pretrain-mlm --out out-mlm --steps 2000
    tinyllm finetune --model out-mlm --epochs 5 --lr 3e-4     # then fine-tune it

The corpus is the bundled Shakespeare text (or --corpus FILE), tokenized with MiniLM's WordPiece
vocabulary (the tokenizer only; the weights start random); 5% of it, the end, is held out. The
result is a transformers-layout folder (config.json, model.safetensors, vocab.txt).
"""

from __future__ import annotations


def add_parser(subparsers) -> None:
    from tinyllm.train.mlm import MLMConfig

    defaults = MLMConfig()
    parser = subparsers.add_parser("pretrain-mlm", help="pretrain a small BERT with masked LM", description=__doc__)
    parser.add_argument("--out", metavar="DIR", required=True, help="where to write the pretrained model")
    parser.add_argument("--corpus", metavar="FILE", default=None, help="a UTF-8 text (default: bundled Shakespeare)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--seq-len", type=int, default=defaults.seq_len)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tinyllm.backend import RANDOM, np
    from tinyllm.data import load_text
    from tinyllm.hub import download
    from tinyllm.models.bert import BertConfig
    from tinyllm.models.bert_heads import BertForMaskedLM
    from tinyllm.models.bert_pretrained import load_tokenizer
    from tinyllm.train.mlm import MLMConfig, pretrain_mlm

    tokenizer = load_tokenizer(download("minilm"))
    ids = np.asarray(tokenizer.encode(load_text(args.corpus), add_special_tokens=False), dtype=np.int64)
    held_out = max(len(ids) // 20, args.seq_len)
    RANDOM.seed(args.seed)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=max(args.seq_len, 128),
    )
    model = BertForMaskedLM(config)
    model.bert.tokenizer = tokenizer
    print(f"corpus {len(ids):,} tokens ({held_out:,} held out); model {model.num_parameters():,} parameters")
    train_config = MLMConfig(
        steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
        warmup_steps=args.warmup_steps, eval_every=args.eval_every, seed=args.seed,
    )  # fmt: skip
    history = pretrain_mlm(model, ids[:-held_out], ids[-held_out:], tokenizer, train_config, progress=not args.quiet)
    for step, loss in history.eval_loss:
        print(f"step {step:>6}: held-out masked-token loss {loss:.4f}")
    print(f"{len(history.train_loss)} steps in {history.seconds:.0f} s")
    model.save_pretrained(args.out)
    print(f"saved to {args.out}")
    return 0

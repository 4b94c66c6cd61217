"""`tinyllm finetune`: fine-tune a BERT sentence classifier on the VADER movie-review sentiment split.

    tinyllm finetune                         # MiniLM, the tuned defaults, prints accuracy / F1 / time
    tinyllm finetune --model out-mlm --epochs 5 --lr 3e-4 --out out-sentiment

The data is the 80/20 split of tinyllm.data.sentiment (seed 0; --data for another file of the
same format). Training shows a progress bar; the test accuracy, the F1 of the positive class,
macro F1 and the wall time of training are printed at the end, and --out saves the classifier:
with --pooling pooler as transformers' BertForSequenceClassification, with mean or cls pooling
(no pooler) as model type tinyllm_bert, whose folder holds the same network as transformers code
(AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=True)).
"""

from __future__ import annotations

import time


def add_parser(subparsers) -> None:
    from tinyllm.train.classify import FinetuneConfig

    defaults = FinetuneConfig()
    parser = subparsers.add_parser("finetune", help="fine-tune a BERT sentiment classifier", description=__doc__)
    parser.add_argument("--model", metavar="DIR", default=None, help="a BERT folder (default: MiniLM from the hub)")
    parser.add_argument("--data", metavar="FILE", default=None, help="a movieReviewSnippets-format file")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    parser.add_argument("--warmup-fraction", type=float, default=defaults.warmup_fraction)
    parser.add_argument("--max-length", type=int, default=defaults.max_length, help="tokens per sentence")
    parser.add_argument(
        "--pooling",
        choices=("mean", "cls", "pooler"),
        default="mean",
        help="mean of the tokens, the [CLS] vector, or BERT's pooler (saved as transformers' "
        "BertForSequenceClassification, which loads it as the same model; mean and cls save as model type "
        "tinyllm_bert, which transformers loads with trust_remote_code=True, see the folder's README.md)",
    )
    parser.add_argument(
        "--train-word-embeddings",
        action="store_true",
        help="also update the word-embedding table (frozen by default: about 0.8x the time per step)",
    )
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training sentences")
    parser.add_argument("--test-limit", type=int, default=None, help="evaluate on only the first N test sentences")
    parser.add_argument("--eval-each-epoch", action="store_true", help="print test scores after every epoch")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", metavar="DIR", default=None, help="save the fine-tuned classifier here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from tinyllm.backend import RANDOM
    from tinyllm.data.sentiment import load_sentiment
    from tinyllm.hub import download
    from tinyllm.models.bert_heads import BertForSequenceClassification
    from tinyllm.train.classify import FinetuneConfig, evaluate, finetune

    config = FinetuneConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_fraction=args.warmup_fraction,
        weight_decay=args.weight_decay,
        max_length=args.max_length,
        freeze_word_embeddings=not args.train_word_embeddings,
        seed=args.seed,
    )
    train, test = load_sentiment(args.data)
    if args.limit:
        train = train.head(args.limit)
    if args.test_limit:
        test = test.head(args.test_limit)
    RANDOM.seed(args.seed)
    model = BertForSequenceClassification.from_pretrained(args.model or download("minilm"), pooling=args.pooling)
    print(f"train {len(train)} sentences, test {len(test)}; {model.num_parameters():,} parameters; {config}")

    def report(epoch, model):
        scores = evaluate(model, test.texts, test.labels, max_length=config.max_length)
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), flush=True)

    history = finetune(
        model, train.texts, train.labels, config, progress=not args.quiet,
        on_epoch_end=report if args.eval_each_epoch else None,
    )  # fmt: skip
    start = time.perf_counter()
    scores = evaluate(model, test.texts, test.labels, max_length=config.max_length)
    eval_seconds = time.perf_counter() - start
    print(
        f"test accuracy {scores['accuracy']:.4f}  F1 {scores['f1']:.4f}  macro F1 {scores['macro_f1']:.4f}  "
        f"(training {history.seconds:.0f} s for {len(history.loss)} steps, evaluation {eval_seconds:.0f} s)"
    )
    if args.out:
        model.save_pretrained(args.out)
        print(f"saved to {args.out}")
    return 0

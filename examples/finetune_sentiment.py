"""Fine-tune all-MiniLM-L6-v2 on the VADER movie-review sentences and report test accuracy and F1.

    python examples/finetune_sentiment.py            # the tuned defaults (several minutes on 2 cores)
    python examples/finetune_sentiment.py --quick    # 400 sentences, one epoch: a smoke run

The same run as `tinyllm finetune`; written out here to show the pieces: the split, the model
with its classification head, the training loop, and the evaluation.
"""

import sys
import time

import tinyllm as tl
from tinyllm.data.sentiment import load_sentiment
from tinyllm.hub import download
from tinyllm.models.bert_heads import BertForSequenceClassification
from tinyllm.train.classify import FinetuneConfig, evaluate, finetune


def main() -> None:
    quick = "--quick" in sys.argv
    train, test = load_sentiment()  # 8,454 / 2,114 sentences, labels 0 negative / 1 positive
    if quick:
        train, test = train.head(400), test.head(400)
    tl.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(download("minilm"), pooling="mean")
    config = FinetuneConfig(epochs=1) if quick else FinetuneConfig()
    print(f"fine-tuning on {len(train)} sentences: {config}")
    history = finetune(model, train.texts, train.labels, config)
    start = time.perf_counter()
    scores = evaluate(model, test.texts, test.labels, max_length=config.max_length)
    print(
        f"test accuracy {scores['accuracy']:.4f}, F1 {scores['f1']:.4f}, macro F1 {scores['macro_f1']:.4f}; "
        f"training {history.seconds:.0f} s, evaluation {time.perf_counter() - start:.0f} s"
    )
    for text in ["A gorgeous, moving film.", "Tedious and far too long.", "Not bad at all."]:
        label = ("negative", "positive")[int(model_predict(model, text))]
        print(f"  {label:>8}: {text}")


def model_predict(model, text: str) -> int:
    batch = model.tokenizer([text], return_tensors="tl")
    with tl.no_grad():
        return int(model(batch.input_ids, batch.attention_mask).logits.argmax(dim=-1).item())


if __name__ == "__main__":
    main()

"""Pretrain a small BERT from scratch on Shakespeare with masked LM, then fine-tune it on sentiment.

    python examples/pretrain_mlm.py                  # 2,000 steps, then 3 fine-tuning epochs
    python examples/pretrain_mlm.py --steps 200      # shorter

The whole pretrain -> fine-tune pipeline on tinyllm alone: the encoder starts from random
weights (only MiniLM's WordPiece vocabulary is borrowed), learns from the bundled corpus by
predicting hidden words, and is then fine-tuned as a sentiment classifier. Expect far lower
accuracy than MiniLM's: 1 MB of Elizabethan drama is not modern movie reviews.
"""

import argparse
import tempfile

import numpy as np

import tinyllm as tl
from tinyllm.data import load_text
from tinyllm.data.sentiment import load_sentiment
from tinyllm.hub import download
from tinyllm.models.bert import BertConfig
from tinyllm.models.bert_heads import BertForMaskedLM, BertForSequenceClassification
from tinyllm.models.bert_pretrained import load_tokenizer
from tinyllm.train.classify import FinetuneConfig, evaluate, finetune
from tinyllm.train.mlm import MLMConfig, pretrain_mlm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    args = parser.parse_args()

    tokenizer = load_tokenizer(download("minilm"))
    ids = np.asarray(tokenizer.encode(load_text(), add_special_tokens=False))
    held_out = len(ids) // 20
    tl.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
        intermediate_size=512, max_position_embeddings=128,
    )  # fmt: skip
    model = BertForMaskedLM(config)
    model.bert.tokenizer = tokenizer
    print(f"corpus: {len(ids):,} WordPiece tokens; model: {model.num_parameters():,} parameters")
    history = pretrain_mlm(model, ids[:-held_out], ids[-held_out:], tokenizer, MLMConfig(steps=args.steps))
    for step, loss in history.eval_loss:
        print(f"step {step:>5}: held-out masked-token loss {loss:.3f}")

    for text in ["To be or not to [MASK], that is the question.", "O Romeo, Romeo, [MASK] art thou Romeo?"]:
        batch = tokenizer([text], return_tensors="tl")
        with tl.no_grad():
            logits = model(batch.input_ids, batch.attention_mask).logits.numpy()[0]  # (T, V)
        position = batch.input_ids.numpy()[0].tolist().index(tokenizer.mask_token_id)
        guesses = tokenizer.convert_ids_to_tokens(np.argsort(-logits[position])[:5].tolist())
        print(f"{text}\n  [MASK] -> {guesses}")

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        classifier = BertForSequenceClassification.from_pretrained(folder)
    train, test = load_sentiment()
    tuned = finetune(
        classifier, train.texts, train.labels,
        FinetuneConfig(epochs=args.finetune_epochs, lr=3e-4, freeze_word_embeddings=False),
    )  # fmt: skip
    scores = evaluate(classifier, test.texts, test.labels)
    print(f"sentiment after pretraining: test accuracy {scores['accuracy']:.4f}, F1 {scores['f1']:.4f} "
          f"(fine-tuning {tuned.seconds:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()

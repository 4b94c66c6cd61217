"""Semantic search with all-MiniLM-L6-v2 on tinyllm: rank documents by meaning, not shared words.

    python examples/semantic_search.py
    python examples/semantic_search.py "how do plants make food"

Each text becomes one unit vector (mean of its token states, L2-normalized); the score of a
document is the cosine of its vector with the query's, a dot product of unit vectors.
"""

import sys

from tinyllm.hub import download
from tinyllm.models import BERT

DOCUMENTS = [
    "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into sugar.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "A transformer encoder reads every word of a sentence at once, in both directions.",
    "Preheat the oven to 200 degrees and bake the bread for forty minutes.",
    "The striker scored twice in the second half to win the cup final.",
    "Leaves are green because chlorophyll absorbs red and blue light.",
    "Investors moved their savings into government bonds as shares dropped.",
    "Knead the dough until it is smooth, then let it rise for an hour.",
    "BERT is pretrained by predicting words that were hidden from it.",
    "The goalkeeper saved a penalty in the last minute of extra time.",
]
QUERIES = ["how do plants make food", "why did share prices go down", "a recipe for baking", "language models"]


def search(model: BERT, query: str, documents: list[str], doc_vectors, top_k: int = 3) -> list[tuple[float, str]]:
    """Return the top_k (cosine, document) pairs for query, best first; doc_vectors (N, C) = model.embed(documents)."""
    query_vector = model.embed([query])  # (1, C)
    scores = (doc_vectors @ query_vector.T).numpy()[:, 0]  # (N,) cosines
    ranked = sorted(zip(scores.tolist(), documents), reverse=True)
    return ranked[:top_k]


def main() -> None:
    model = BERT.from_pretrained(download("minilm"))
    doc_vectors = model.embed(DOCUMENTS)  # (N, C), unit rows, computed once
    for query in sys.argv[1:] or QUERIES:
        print(f"\nquery: {query}")
        for score, document in search(model, query, DOCUMENTS, doc_vectors):
            print(f"  {score:.3f}  {document}")


if __name__ == "__main__":
    main()

"""The fixtures of the WordPiece tests: MiniLM's folder, tinyllm's tokenizer of its vocabulary,
and transformers' BertTokenizer of the same folder as the oracle. Test files take them with
`pytest_plugins`."""

import pytest

from tinyllm.hub import download
from tinyllm.tokenizers import WordPieceTokenizer


@pytest.fixture(scope="module")
def minilm_dir():
    return download("minilm", quiet=True)


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return WordPieceTokenizer.from_file(minilm_dir / "vocab.txt")


@pytest.fixture(scope="module")
def reference(minilm_dir):
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(str(minilm_dir))

"""The models built on tinyllm.nn: GPT (and, from their issues, BERT and Llama)."""

from tinyllm.models.bert import BERT, BertConfig
from tinyllm.models.gpt import GPT, GPTConfig
from tinyllm.models.llama import Llama, LlamaConfig

__all__ = ["BERT", "BertConfig", "GPT", "GPTConfig", "Llama", "LlamaConfig"]

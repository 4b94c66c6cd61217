"""The models built on tinyllm.nn: GPT, BERT and Llama, their generation, and tools to look inside them."""

from tinyllm.models.bert import BERT, BertConfig
from tinyllm.models.gpt import GPT, GPTConfig
from tinyllm.models.llama import Llama, LlamaConfig

__all__ = ["BERT", "BertConfig", "GPT", "GPTConfig", "Llama", "LlamaConfig"]

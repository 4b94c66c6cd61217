"""The models built on tinyllm.nn: GPT (and, from their issues, BERT and Llama)."""

from tinyllm.models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig"]

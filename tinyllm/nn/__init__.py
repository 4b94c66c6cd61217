"""Neural-network building blocks: Module, Parameter, layers, and the functional API (F)."""

from tinyllm.nn import functional
from tinyllm.nn.attention import CausalSelfAttention, KVCache, LayerKVCache
from tinyllm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, RMSNorm, SiLU
from tinyllm.nn.module import Module, ModuleList, Parameter, Sequential
from tinyllm.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from tinyllm.nn.transformer import MLP, Block

__all__ = [
    "GELU", "Dropout", "Embedding", "LayerNorm", "Linear", "Module", "ModuleList", "Parameter",
    "RMSNorm", "ReLU", "Sequential", "SiLU", "functional",
    "MLP", "Block", "CausalSelfAttention", "KVCache", "LayerKVCache", "LearnedPositionalEmbedding",
    "SinusoidalPositionalEncoding",
]  # fmt: skip

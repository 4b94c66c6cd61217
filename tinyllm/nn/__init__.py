"""Neural-network building blocks, `import tinyllm.nn as nn` as in PyTorch: Module, Parameter,
containers, layers, losses, `nn.init`, `nn.utils` and the functional API (`nn.functional`, F)."""

from tinyllm.nn import functional, init, utils
from tinyllm.nn.attention import CausalSelfAttention, KVCache, LayerKVCache
from tinyllm.nn.encoder_decoder import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from tinyllm.nn.layers import (
    GELU,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    LogSoftmax,
    ReLU,
    RMSNorm,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from tinyllm.nn.loss import CrossEntropyLoss, MSELoss, NLLLoss
from tinyllm.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from tinyllm.nn.multihead_attention import MultiheadAttention
from tinyllm.nn.positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from tinyllm.nn.transformer import MLP, Block

__all__ = [
    "GELU", "CrossEntropyLoss", "Dropout", "Embedding", "Identity", "LayerNorm", "Linear",
    "LogSoftmax", "MSELoss", "Module", "ModuleDict", "ModuleList", "MultiheadAttention",
    "NLLLoss", "Parameter", "RMSNorm", "ReLU", "Sequential", "SiLU", "Sigmoid", "Softmax", "Tanh",
    "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerEncoderLayer", "functional", "init", "utils",
    "MLP", "Block", "CausalSelfAttention", "KVCache", "LayerKVCache", "LearnedPositionalEmbedding",
    "SinusoidalPositionalEncoding",
]  # fmt: skip

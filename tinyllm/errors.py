"""One small hierarchy of typed errors. Every error tinyllm raises on bad input is one of these."""


class TinyLLMError(Exception):
    """Base class of every error tinyllm raises on purpose."""


class ShapeError(TinyLLMError, ValueError):
    """Shapes that do not fit together (matmul, broadcast, reshape, a sequence too long)."""


class DTypeError(TinyLLMError, TypeError):
    """A dtype the operation does not accept (for example grad on an integer tensor)."""


class DeviceError(TinyLLMError, RuntimeError):
    """Tensors on different devices in one op, or a device that is not available."""


class OutOfRangeError(TinyLLMError, IndexError):
    """An index or token id outside the valid range (for example id >= vocab size)."""


class GraphError(TinyLLMError, RuntimeError):
    """Misuse of the autograd graph (backward twice, backward of a non-scalar without a gradient)."""


class CheckpointError(TinyLLMError, IOError):
    """A checkpoint that is missing, truncated or corrupted."""


class TokenizerError(TinyLLMError, ValueError):
    """Text or token ids a tokenizer cannot handle (unknown character, id out of range)."""


class ConfigError(TinyLLMError, ValueError):
    """A model config, model directory or weight file the loader does not support."""


class DataError(TinyLLMError, ValueError):
    """A corpus or dataset that is empty, too short or malformed."""


class ArgumentError(TinyLLMError, ValueError):
    """An argument of the wrong type or outside its range (a negative learning rate, p = 1.5)."""


class UnsupportedError(TinyLLMError, NotImplementedError):
    """A feature tinyllm does not have, such as a PyTorch argument it does not implement."""


class DistributedError(TinyLLMError, RuntimeError):
    """A group of ranks that cannot work: no MPI library, a rank that failed, a batch that does not split."""

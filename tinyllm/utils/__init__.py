"""PyTorch's `torch.utils` for tinyllm: `tinyllm.utils.data` (Dataset, TensorDataset, DataLoader)."""

from tinyllm.utils import data

__all__ = ["data"]

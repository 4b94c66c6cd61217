"""`Dataset`, `TensorDataset` and `DataLoader`, as `torch.utils.data` has them.

A DataLoader draws indices from a sampler (in order, or shuffled), groups them into batches and
collates each batch: tensors are stacked along a new first axis, numbers become a tensor, and
tuples, lists and dicts are collated field by field. Loading runs in the calling process
(`num_workers` is accepted; the batches are the same).

Shuffling draws from tinyllm's one generator (`tl.manual_seed`), or from the `generator` given: a
`tinyllm.backend.HostRandom`, seeded on its own, so the order is reproducible apart from the
model's random numbers. The order is not PyTorch's (a different generator).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence

from tinyllm import ops
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import RANDOM, HostRandom, np
from tinyllm.errors import ArgumentError, ShapeError
from tinyllm.validate import check_int


class Dataset:
    """A map-style dataset: `dataset[i]` is sample i, `len(dataset)` the number of samples."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError


class TensorDataset(Dataset):
    """Samples are rows of tensors of one first-axis length: `dataset[i] = (t[i] for t in tensors)`."""

    def __init__(self, *tensors: Tensor) -> None:
        if not tensors:
            raise ArgumentError("TensorDataset needs at least one tensor")
        lengths = {t.shape[0] if t.ndim else None for t in tensors}
        if len(lengths) != 1 or None in lengths:
            raise ShapeError(
                f"TensorDataset tensors need one first-axis length, got shapes {[t.shape for t in tensors]}"
            )
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class SequentialSampler:
    """Yield 0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sequence) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler:
    """Yield a random permutation of the indices, a new one at every pass."""

    def __init__(self, data_source: Sequence, generator: HostRandom | None = None) -> None:
        if generator is not None and not isinstance(generator, HostRandom):
            raise ArgumentError(f"generator must be a tinyllm.backend.HostRandom, got {type(generator).__name__}")
        self.data_source = data_source
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        source = (self.generator or RANDOM).generator
        return iter(source.permutation(len(self.data_source)).tolist())

    def __len__(self) -> int:
        return len(self.data_source)


class BatchSampler:
    """Group a sampler's indices into lists of batch_size (the last one shorter unless drop_last)."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        count = len(self.sampler) / self.batch_size
        return math.floor(count) if self.drop_last else math.ceil(count)


def default_collate(batch: list):
    """Return a batch of samples as one structure: tensors and arrays stacked (B, ...), numbers as
    a (B,) tensor (int64, float64 or bool, as PyTorch), tuples and lists as lists, dicts by key."""
    first = batch[0]
    if isinstance(first, Tensor):
        return ops.stack(batch, 0)
    if isinstance(first, np.ndarray):
        return ops.tensor(np.stack(batch))
    if isinstance(first, bool):
        return ops.tensor(batch, dtype="bool")
    if isinstance(first, numbers.Integral):
        return ops.tensor(batch, dtype="int64")
    if isinstance(first, numbers.Real):
        return ops.tensor(batch, dtype="float64")
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, dict):
        return {key: default_collate([sample[key] for sample in batch]) for key in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple keeps its type
        return type(first)(*(default_collate(list(field)) for field in zip(*batch)))
    if isinstance(first, (tuple, list)):
        if len({len(sample) for sample in batch}) != 1:
            raise ShapeError("default_collate: the samples of a batch have different lengths")
        return [default_collate(list(field)) for field in zip(*batch)]
    raise ArgumentError(f"default_collate cannot batch samples of type {type(first).__name__}; pass collate_fn")


class DataLoader:
    """Iterate over a dataset in batches: `for x, y in DataLoader(dataset, batch_size=32, shuffle=True)`."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int | None = 1,
        shuffle: bool = False,
        sampler: Iterable[int] | None = None,
        batch_sampler: Iterable[list[int]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable | None = None,
        generator: HostRandom | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        multiprocessing_context=None,
        pin_memory_device: str = "",
        in_order: bool = True,
    ) -> None:
        check_int("num_workers", num_workers, minimum=0)
        if sampler is not None and shuffle:
            raise ArgumentError("DataLoader: pass sampler or shuffle=True, not both")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            raise ArgumentError("DataLoader: batch_sampler excludes batch_size, shuffle, sampler and drop_last")
        self.dataset = dataset
        self.batch_size = None if batch_size is None else check_int("batch_size", batch_size, minimum=1)
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        if sampler is None:
            sampler = RandomSampler(dataset, generator) if shuffle else SequentialSampler(dataset)
        self.sampler = sampler
        if batch_sampler is None and self.batch_size is not None:
            batch_sampler = BatchSampler(sampler, self.batch_size, drop_last)
        self.batch_sampler = batch_sampler

    def __iter__(self) -> Iterator:
        if self.batch_sampler is None:  # batch_size=None: samples one by one, uncollated
            for index in self.sampler:
                yield self.dataset[index]
            return
        for indices in self.batch_sampler:
            yield self._batch(indices)

    def _batch(self, indices: list[int]):
        if self.collate_fn is None and isinstance(self.dataset, TensorDataset):
            # one gather per tensor instead of len(indices) lookups and a stack: the same batch
            return [t[indices] for t in self.dataset.tensors]
        collate = default_collate if self.collate_fn is None else self.collate_fn
        return collate([self.dataset[i] for i in indices])

    def __len__(self) -> int:
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

"""tinyllm.utils.data against torch.utils.data: batches, drop_last, seeded shuffling, collation."""

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as torch_data

import tinyllm as tl
from tinyllm.backend import HostRandom
from tinyllm.errors import ArgumentError, ShapeError
from tinyllm.utils.data import DataLoader, Dataset, TensorDataset


def features_and_labels(n=10):
    return np.arange(n * 3, dtype=np.float32).reshape(n, 3), np.arange(n) % 4


@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (4, False), (4, True), (10, True), (16, False)])
def test_batches_of_a_tensor_dataset_match_torch(batch_size, drop_last):
    x, y = features_and_labels()
    ours = DataLoader(TensorDataset(tl.tensor(x), tl.tensor(y)), batch_size=batch_size, drop_last=drop_last)
    theirs = torch_data.DataLoader(
        torch_data.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=batch_size, drop_last=drop_last
    )
    assert len(ours) == len(theirs)
    batches = list(ours)
    assert len(batches) == len(list(theirs))
    for (xb, yb), (txb, tyb) in zip(batches, theirs):
        np.testing.assert_array_equal(xb.numpy(), txb.numpy())
        np.testing.assert_array_equal(yb.numpy(), tyb.numpy())
        assert yb.dtype == "int64"


def test_shuffle_is_a_permutation_reproducible_from_its_generator():
    x, y = features_and_labels(12)
    dataset = TensorDataset(tl.tensor(x), tl.tensor(y))

    def order(generator):
        return [
            int(i) for _, labels in DataLoader(dataset, 5, shuffle=True, generator=generator) for i in labels.numpy()
        ]

    first = order(HostRandom(3))
    assert sorted(first) == sorted(y.tolist()) and first != y.tolist()
    assert order(HostRandom(3)) == first
    loader = DataLoader(dataset, 12, shuffle=True, generator=HostRandom(3))
    epoch_one, epoch_two = (next(iter(loader))[0].numpy() for _ in range(2))
    assert not np.array_equal(epoch_one, epoch_two)  # a new permutation every pass


class Pairs(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return {"x": np.full(2, i, dtype=np.float32), "y": i, "w": 0.5 * i, "flag": i % 2 == 0, "name": f"s{i}"}

    def __len__(self):
        return self.n


def test_default_collate_batches_fields_like_torch():
    ours = next(iter(DataLoader(Pairs(5), batch_size=3)))
    theirs = next(iter(torch_data.DataLoader(Pairs(5), batch_size=3)))
    assert set(ours) == set(theirs)
    for key in ("x", "y", "w", "flag"):
        np.testing.assert_array_equal(ours[key].numpy(), theirs[key].numpy())
        assert ours[key].dtype == str(theirs[key].dtype).removeprefix("torch.")
    assert ours["name"] == theirs["name"]
    Point = namedtuple("Point", "a b")
    batch = DataLoader([Point(tl.ones(2), 1), Point(tl.zeros(2), 2)], batch_size=2).__iter__().__next__()
    assert isinstance(batch, Point) and batch.a.shape == (2, 2) and batch.b.tolist() == [1, 2]


def test_batch_size_none_yields_samples_and_bad_arguments_are_named():
    x, y = features_and_labels(3)
    samples = list(DataLoader(TensorDataset(tl.tensor(x), tl.tensor(y)), batch_size=None))
    assert len(samples) == 3 and samples[1][0].shape == (3,)
    with pytest.raises(ShapeError, match="first-axis"):
        TensorDataset(tl.ones(3, 2), tl.ones(4))
    with pytest.raises(ArgumentError, match="batch_size"):
        DataLoader(Pairs(3), batch_size=0)
    with pytest.raises(ArgumentError, match="sampler"):
        DataLoader(Pairs(3), shuffle=True, sampler=[0, 1])

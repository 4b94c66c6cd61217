"""Data parallelism without MPI: the communicator interface on N threads (`run_ranks`), the
gradient hook, bucketed gradient averaging during backward, ZeRO-1 against AdamW, and bad setups.
The same code on real MPI ranks is tested in test_distributed_mpi.py.

Models here are float64, so no Numba kernel runs, and are built before the rank threads start
(they draw from the global RNG): the threads can share the process."""

import ctypes
import sys
import threading
import time
import types

import numpy as np
import pytest
from distributed_program import TEXT, TOKENIZER, tiny_gpt

import tinyllm as tl
import tinyllm.nn.functional as F
from tinyllm import distributed
from tinyllm.data import Corpus
from tinyllm.distributed import Communicator, DataParallel, FakeCommunicator, LocalCommunicator, ZeroAdamW, run_ranks
from tinyllm.errors import ConfigError, DistributedError, GraphError, UnsupportedError
from tinyllm.optim import SGD, AdamW, weight_decay_groups
from tinyllm.train import TrainConfig, Trainer


def rank_values(rank: int, n: int = 12) -> np.ndarray:
    return np.arange(n, dtype=np.float64) * (rank + 1) + 10.0 * rank


def test_post_accumulate_grad_hook_sees_each_leafs_complete_gradient_once():
    x = tl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    seen = []
    handle = x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    ((x * x).sum() + (x * 3.0).sum()).backward()  # two paths into x: one call, with their sum
    assert len(seen) == 1 and np.allclose(seen[0], [5.0, 7.0, 9.0])
    handle.remove()
    (x * x).sum().backward()
    assert len(seen) == 1
    with pytest.raises(GraphError):
        (x * 2.0).register_post_accumulate_grad_hook(print)


def test_collectives_on_three_rank_threads_give_numpys_results():
    world = 3
    everyone = np.stack([rank_values(r) for r in range(world)])  # (3, 12)

    def program(comm: FakeCommunicator):
        mean = rank_values(comm.rank)
        comm.allreduce_mean_(mean)
        shard = np.zeros(4)
        comm.reduce_scatter_mean(rank_values(comm.rank), shard)
        gathered = np.zeros(12)
        gathered[comm.rank * 4 : comm.rank * 4 + 4] = comm.rank + 1.0
        comm.allgather_(gathered)
        broadcast = rank_values(comm.rank)
        comm.broadcast_(broadcast, root=2)
        return mean, shard, gathered, broadcast, comm.allgather_object(comm.rank * 10)

    results = run_ranks(world, program)
    for rank, (mean, shard, gathered, broadcast, objects) in enumerate(results):
        assert np.allclose(mean, everyone.mean(axis=0))
        assert np.allclose(shard, everyone.mean(axis=0)[rank * 4 : rank * 4 + 4])
        assert np.array_equal(gathered, np.repeat([1.0, 2.0, 3.0], 4))
        assert np.array_equal(broadcast, rank_values(2))
        assert objects == [0, 10, 20]


def test_a_rank_that_raises_stops_the_others_at_once_with_its_rank_named():
    def program(comm):
        if comm.rank == 2:
            raise ValueError("bad shard")
        comm.allreduce_mean_(np.zeros(3))  # ranks 0 and 1 would wait here for rank 2 forever

    started = time.perf_counter()
    with pytest.raises(DistributedError, match="rank 2 of 3 failed: ValueError: bad shard"):
        run_ranks(3, program, timeout=30)
    assert time.perf_counter() - started < 5


class CountingCommunicator(Communicator):
    """Passes collectives to a FakeCommunicator and counts the gradient allreduces started."""

    def __init__(self, inner: FakeCommunicator) -> None:
        self.inner, self.rank, self.world_size = inner, inner.rank, inner.world_size
        self.started = 0

    def broadcast_(self, buffer, root=0):
        self.inner.broadcast_(buffer, root)

    def start_allreduce_mean_(self, buffer):
        self.started += 1
        return self.inner.start_allreduce_mean_(buffer)


def batch(rows: int = 4):
    ids = np.array([[(7 * r + 3 * t) % 20 for t in range(9)] for r in range(rows)])  # (rows, 9)
    return ids[:, :-1], ids[:, 1:]


def gpt_loss(model, x, y):
    logits = model(tl.tensor(x))  # (B, T, V)
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), tl.tensor(y).view(-1))  # PyTorch's (N, C)


def test_data_parallel_averages_gradients_in_buckets_started_during_backward():
    x, y = batch()
    reference = tiny_gpt("float64")
    gpt_loss(reference, x, y).backward()
    expected = {name: p.grad.numpy() for name, p in reference.named_parameters()}

    models = [tiny_gpt("float64") for _ in range(2)]  # built here: the threads would race for the global RNG

    def program(comm):
        counting = CountingCommunicator(comm)
        model = models[comm.rank]
        if comm.rank == 1:  # a different start: the broadcast from rank 0 must make the replicas equal
            for p in model.parameters():
                p.data = p.data + 1.0
        wrapper = DataParallel(model, counting, bucket_mb=0.002)
        rows = slice(comm.rank * 2, comm.rank * 2 + 2)
        with wrapper.no_sync():
            gpt_loss(model, x[rows], y[rows]).backward()
        during_no_sync = counting.started
        for p in model.parameters():
            p.grad = None
        gpt_loss(model, x[rows], y[rows]).backward()
        during_backward = counting.started
        wrapper.sync_gradients()
        return (
            len(wrapper.buckets),
            during_no_sync,
            during_backward,
            {n: p.grad.numpy() for n, p in model.named_parameters()},
        )

    for n_buckets, during_no_sync, during_backward, grads in run_ranks(2, program):
        assert n_buckets > 3
        assert during_no_sync == 0
        assert during_backward == n_buckets  # every bucket started before backward returned
        for name, grad in grads.items():
            np.testing.assert_allclose(grad, expected[name], rtol=0, atol=1e-12, err_msg=name)


def adamw_of(model):
    return AdamW(weight_decay_groups(model, 0.1), lr=1e-2, betas=(0.9, 0.99))


def test_zero1_keeps_a_third_of_the_moments_per_rank_and_steps_as_adamw():
    x, y = batch(6)
    reference = tiny_gpt("float64")
    optimizer = adamw_of(reference)
    for _ in range(3):
        gpt_loss(reference, x, y).backward()
        optimizer.step()
        optimizer.zero_grad()
    n_params = reference.num_parameters()

    models = [tiny_gpt("float64") for _ in range(3)]

    def program(comm):
        model = models[comm.rank]
        zero = ZeroAdamW(adamw_of(model), comm)
        rows = slice(comm.rank * 2, comm.rank * 2 + 2)
        for _ in range(3):
            gpt_loss(model, x[rows], y[rows]).backward()
            zero.step()
            zero.zero_grad()
        return zero.shard_numel(), model.state_dict(), zero.state_dict()

    results = run_ranks(3, program)
    expected_state = optimizer.state_dict()
    for shard_numel, weights, state in results:
        assert shard_numel == -(-n_params // 3)
        for name, value in reference.state_dict().items():
            np.testing.assert_allclose(weights[name], value, rtol=0, atol=1e-12, err_msg=name)
        assert state["param_groups"] == expected_state["param_groups"]
        for index, moments in expected_state["state"].items():
            assert state["state"][index]["step"] == moments["step"] == 3
            np.testing.assert_allclose(
                state["state"][index]["exp_avg_sq"], moments["exp_avg_sq"], rtol=1e-9, atol=1e-15
            )


def test_zero1_needs_adamw():
    with pytest.raises(UnsupportedError, match="SGD"):
        ZeroAdamW(SGD(tiny_gpt("float32").parameters(), lr=0.1), LocalCommunicator())
    with pytest.raises(ConfigError, match="zero"):
        TrainConfig(zero=2)


def test_without_a_launcher_the_world_is_one_local_process(monkeypatch):
    for name in distributed.world.LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    comm = distributed.init()
    assert isinstance(comm, LocalCommunicator) and comm.world_size == 1 and comm.is_main


def test_a_launcher_without_mpi4py_is_a_distributed_error_saying_what_to_install(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(DistributedError, match=r"pip install 'tinyllm\[mpi\]'"):
        distributed.init()


class ThreeRanks(LocalCommunicator):
    world_size = 3


def test_a_global_batch_that_does_not_split_over_the_ranks_is_a_config_error():
    corpus = Corpus.from_text(TEXT, TOKENIZER, block_size=8)
    with pytest.raises(ConfigError, match="batch_size 8 .* 3 ranks"):
        Trainer(tiny_gpt("float32"), TOKENIZER, corpus, TrainConfig(batch_size=8), comm=ThreeRanks())


class DeviceArray(np.ndarray):
    """A NumPy array posing as a CuPy array: `.data.ptr` is its address, as CuPy's device pointer."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


class FakeNccl:
    """cupy.cuda.nccl on the host: each NcclCommunicator call reads and writes raw addresses, as NCCL does."""

    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 6, 7, 8, 0
    CTYPES = {7: ctypes.c_float, 8: ctypes.c_double}

    def __init__(self) -> None:
        self.groups, self.calls = {}, 0

    def get_unique_id(self):
        return (len(self.groups),)

    def NcclCommunicator(self, world_size, unique_id, rank):  # noqa: N802  (CuPy's name)
        nccl = self
        group = self.groups.setdefault(unique_id, {"barrier": threading.Barrier(world_size), "posts": {}})

        def read(pointer, count, datatype):
            return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(nccl.CTYPES[datatype])), (count,)).copy()

        def write(pointer, values, datatype):
            target = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(nccl.CTYPES[datatype])), values.shape)
            target[...] = values

        def exchange(values):
            nccl.calls += 1
            group["posts"][rank] = values
            group["barrier"].wait()
            posts = [group["posts"][r] for r in range(world_size)]
            group["barrier"].wait()
            return posts

        class Communicator:
            def allReduce(self, send, receive, count, datatype, op, stream):  # noqa: N802
                write(receive, sum(exchange(read(send, count, datatype))), datatype)

            def reduceScatter(self, send, receive, count, datatype, op, stream):  # noqa: N802
                total = sum(exchange(read(send, count * world_size, datatype)))
                write(receive, total[rank * count : (rank + 1) * count], datatype)

            def allGather(self, send, receive, count, datatype, stream):  # noqa: N802
                write(receive, np.concatenate(exchange(read(send, count, datatype))), datatype)

            def broadcast(self, send, receive, count, datatype, root, stream):
                write(receive, exchange(read(send, count, datatype))[root], datatype)

        return Communicator()


def install_fake_cupy(monkeypatch, n_devices: int = 2):
    """Put a CuPy with a host-side NCCL into sys.modules; return (its nccl, the list of devices put to use)."""
    nccl, used = FakeNccl(), []
    stream = types.SimpleNamespace(ptr=0, synchronize=lambda: None)
    device = lambda index: types.SimpleNamespace(use=lambda: used.append(index))  # noqa: E731
    cuda = types.SimpleNamespace(
        Device=device,
        runtime=types.SimpleNamespace(getDeviceCount=lambda: n_devices),
        get_current_stream=lambda: stream,
        nccl=nccl,
    )
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(ndarray=DeviceArray, cuda=cuda))
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    return nccl, used


def test_nccl_communicator_sends_device_buffers_through_nccl_and_host_buffers_through_the_host(monkeypatch):
    from tinyllm.distributed.nccl import NCCLCommunicator

    nccl, used = install_fake_cupy(monkeypatch)
    everyone = np.stack([rank_values(r) for r in range(2)])  # (2, 12)

    def on_device(values):
        return np.array(values, dtype=np.float32).view(DeviceArray)

    def program(host):
        comm = NCCLCommunicator(host)
        mean = on_device(rank_values(comm.rank))
        comm.allreduce_mean_(mean)
        shard = on_device(np.zeros(6))
        comm.reduce_scatter_mean(on_device(rank_values(comm.rank)), shard)
        gathered = on_device(np.zeros(12))
        gathered[comm.rank * 6 : comm.rank * 6 + 6] = comm.rank + 1.0
        comm.allgather_(gathered)
        broadcast = on_device(rank_values(comm.rank))
        comm.broadcast_(broadcast, root=1)
        calls = nccl.calls
        on_host = rank_values(comm.rank)
        comm.allreduce_mean_(on_host)
        return mean, shard, gathered, broadcast, on_host, calls, nccl.calls

    for rank, (mean, shard, gathered, broadcast, on_host, calls, later) in enumerate(run_ranks(2, program)):
        np.testing.assert_allclose(mean, everyone.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(shard, everyone.mean(axis=0)[rank * 6 : rank * 6 + 6], rtol=1e-6)
        assert np.array_equal(gathered, np.repeat([1.0, 2.0], 6))
        assert np.array_equal(broadcast, rank_values(1).astype(np.float32))
        np.testing.assert_allclose(on_host, everyone.mean(axis=0))
        assert calls == later == 8  # 4 collectives on each of 2 ranks through NCCL; the host one did not
    assert sorted(used) == [0, 1]  # each rank drives the GPU of its local rank

"""`FakeCommunicator`: N ranks as threads of one process, for testing data-parallel logic without MPI.

`run_ranks(n, fn)` calls fn(communicator) on n threads and returns their results in rank order.
Each collective is two barriers: every rank posts a copy of its buffer, waits, computes the
result from all posts in rank order (so every rank gets the same bits), waits again. A rank
that raises or calls `abort` breaks the barriers, and every other rank raises DistributedError
naming it, instead of waiting forever.

The threads share the process: global state (the grad mode, the global RNG, the kernel choice)
is shared too, so code run this way must not change it while other ranks run.
"""

from __future__ import annotations

import threading

from tinyllm.backend import backend_of, np
from tinyllm.distributed.communicator import Communicator, Pending
from tinyllm.errors import DistributedError


class _Group:
    def __init__(self, world_size: int, timeout: float) -> None:
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=timeout)
        self.posts: list = [None] * world_size
        self.failure: str | None = None


class FakeCommunicator(Communicator):
    """Rank `rank` of an in-process group of threads (made by `run_ranks`)."""

    def __init__(self, group: _Group, rank: int) -> None:
        self.group, self.rank, self.world_size = group, rank, group.world_size

    def _exchange(self, value) -> list:
        """Return every rank's value, in rank order (host copies of arrays)."""
        group = self.group
        group.posts[self.rank] = value
        self._wait()
        posts = list(group.posts)
        self._wait()
        return posts

    def _wait(self) -> None:
        try:
            self.group.barrier.wait()
        except threading.BrokenBarrierError:
            raise DistributedError(self.group.failure or "a rank left the group") from None

    def broadcast_(self, buffer, root: int = 0) -> None:
        posts = self._exchange(_host(buffer) if self.rank == root else None)
        _write(buffer, posts[root])

    def start_allreduce_mean_(self, buffer) -> Pending:
        posts = self._exchange(_host(buffer))
        total = posts[0].copy()
        for post in posts[1:]:
            total += post
        total /= self.world_size
        _write(buffer, total)
        return Pending()

    def reduce_scatter_mean(self, send, receive) -> None:
        posts = self._exchange(_host(send))
        start, stop = self.block(send.size)
        total = posts[0][start:stop].copy()
        for post in posts[1:]:
            total += post[start:stop]
        total /= self.world_size
        _write(receive, total)

    def allgather_(self, buffer) -> None:
        start, stop = self.block(buffer.size)
        posts = self._exchange(_host(buffer)[start:stop])
        _write(buffer, np.concatenate(posts))

    def allgather_object(self, value) -> list:
        return self._exchange(value)

    def barrier(self) -> None:
        self._exchange(None)

    def abort(self, message: str, code: int = 1) -> None:
        self.group.failure = self.group.failure or message
        self.group.barrier.abort()
        raise DistributedError(message)


def run_ranks(world_size: int, fn, timeout: float = 60.0) -> list:
    """Return [fn(FakeCommunicator of rank r) for r in range(world_size)], each rank run on its own thread.

    If a rank raises, the others stop at their next collective and the first error is raised
    here; the message names the rank that failed.
    """
    group = _Group(world_size, timeout)
    results: list = [None] * world_size
    errors: list = [None] * world_size

    def run(rank: int) -> None:
        communicator = FakeCommunicator(group, rank)
        try:
            results[rank] = fn(communicator)
        except BaseException as error:  # noqa: BLE001  (handed to the caller below)
            errors[rank] = error
            if group.failure is None:
                group.failure = f"rank {rank} of {world_size} failed: {type(error).__name__}: {error}"
            group.barrier.abort()

    threads = [threading.Thread(target=run, args=(rank,), name=f"fake-rank-{rank}") for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [error for error in errors if error is not None]
    if failed:
        causes = [error for error in failed if not isinstance(error, DistributedError)] or failed
        raise DistributedError(group.failure) from causes[0]
    return results


def _host(array):
    """Return a host copy: a rank may overwrite its buffer while another still reads the post."""
    return np.array(backend_of(array).to_host(array), copy=True)


def _write(buffer, host_array) -> None:
    buffer[...] = backend_of(buffer).from_host(np.ascontiguousarray(host_array))

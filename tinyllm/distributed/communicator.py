"""`Communicator`: the collectives data-parallel training needs, behind one small interface.

Every rank runs the same program; a communicator tells it which rank it is and moves flat,
contiguous buffers between ranks. Implementations: `LocalCommunicator` (a world of one, where
every collective is the identity), `MPICommunicator` (mpi4py, CPU arrays; one machine or many),
`NCCLCommunicator` (CuPy's NCCL, GPU arrays) and `FakeCommunicator` (N ranks as threads of one
process, for tests). The trainer has one code path over all of them.

Buffers are 1-d arrays of one dtype. Collectives that end in `_` work in place. A mean is a sum
divided by world_size on every rank, so all ranks hold bit-identical results.
"""

from __future__ import annotations

import os
import socket


class Pending:
    """A collective under way: `wait()` returns once its buffer holds the result."""

    def __init__(self, finish=None) -> None:
        self._finish = finish

    def wait(self) -> None:
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()


class Communicator:
    """A group of `world_size` ranks; this process is `rank`. Subclasses implement the collectives."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the one that logs, writes checkpoints and prints samples."""
        return self.rank == 0

    def broadcast_(self, buffer, root: int = 0) -> None:
        """Overwrite buffer on every rank with root's buffer."""
        raise NotImplementedError

    def allreduce_mean_(self, buffer) -> None:
        """Replace buffer on every rank by the element-wise mean of all ranks' buffers."""
        self.start_allreduce_mean_(buffer).wait()

    def start_allreduce_mean_(self, buffer) -> Pending:
        """Start `allreduce_mean_(buffer)` and return at once; the buffer is ready after `wait()`."""
        raise NotImplementedError

    def reduce_scatter_mean(self, send, receive) -> None:
        """Fill receive (send.size / world_size elements) with the mean over ranks of this rank's block of send."""
        raise NotImplementedError

    def allgather_(self, buffer) -> None:
        """Fill every rank's block of buffer (world_size equal blocks) from the rank that owns it."""
        raise NotImplementedError

    def allgather_object(self, value) -> list:
        """Return [value of rank 0, value of rank 1, ...]: small picklable Python values."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Return once every rank has called barrier."""
        raise NotImplementedError

    def abort(self, message: str, code: int = 1) -> None:
        """Stop every rank now (none is left waiting in a collective), after printing message."""
        raise NotImplementedError

    def processes(self) -> list[tuple[str, int]]:
        """Return (host name, process id) of every rank, in rank order."""
        return [(socket.gethostname(), os.getpid())] * self.world_size

    def close(self) -> None:
        """Wait for the other ranks and release what the communicator holds; call it once, at the end."""

    def block(self, n: int) -> tuple[int, int]:
        """Return (start, stop) of this rank's block when n items are split into world_size equal blocks."""
        size = n // self.world_size
        return self.rank * size, (self.rank + 1) * size


class LocalCommunicator(Communicator):
    """A world of one process: every collective leaves its buffer as it is."""

    def broadcast_(self, buffer, root: int = 0) -> None:
        pass

    def start_allreduce_mean_(self, buffer) -> Pending:
        return Pending()

    def reduce_scatter_mean(self, send, receive) -> None:
        receive[...] = send

    def allgather_(self, buffer) -> None:
        pass

    def allgather_object(self, value) -> list:
        return [value]

    def barrier(self) -> None:
        pass

    def abort(self, message: str, code: int = 1) -> None:
        raise SystemExit(f"{message}\n" if message else code)

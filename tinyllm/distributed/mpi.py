"""`MPICommunicator`: the collectives on MPI through mpi4py's buffer methods (no pickling of arrays).

Started by `mpiexec -n N python ...` (or a cluster's launcher). mpi4py passes NumPy arrays to MPI
as raw buffers, in place where MPI allows it (`MPI.IN_PLACE`).

A rank that fails must not leave the others waiting in a collective forever. A rank that dies
(killed, out of memory) is the launcher's to handle: `mpiexec` ends every rank at once and names
the process id of the dead one (`processes()` maps ids to ranks). A rank whose program ends
before `close()` (an uncaught exception, an error turned into an exit status) aborts the job at
exit, naming itself and the error: without that, its MPI_Finalize and the other ranks' next
collective would wait for each other forever.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys

from tinyllm.distributed.communicator import Communicator, Pending
from tinyllm.errors import DistributedError


def import_mpi():
    """Return mpi4py's MPI module (MPI initialized), or raise DistributedError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise DistributedError(
            f"data-parallel training needs mpi4py and an MPI library ({error}); "
            "pip install 'tinyllm[mpi]' (mpi4py and mpich), or mpi4py over a system MPI"
        ) from error
    return MPI


class MPICommunicator(Communicator):
    """The ranks of an MPI communicator (default: every process that mpiexec started)."""

    def __init__(self, comm=None) -> None:
        self.MPI = import_mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self._processes = self.allgather_object((socket.gethostname(), os.getpid()))
        self._closed = False
        atexit.register(self._abort_unless_closed)

    def broadcast_(self, buffer, root: int = 0) -> None:
        self.comm.Bcast(buffer, root=root)

    def allreduce_mean_(self, buffer) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        buffer /= self.world_size

    def start_allreduce_mean_(self, buffer) -> Pending:
        request = self.comm.Iallreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)

        def finish():
            request.Wait()
            buffer[...] /= self.world_size

        return Pending(finish)

    def reduce_scatter_mean(self, send, receive) -> None:
        self.comm.Reduce_scatter_block(send, receive, op=self.MPI.SUM)
        receive /= self.world_size

    def allgather_(self, buffer) -> None:
        self.comm.Allgather(self.MPI.IN_PLACE, buffer)

    def allgather_object(self, value) -> list:
        return self.comm.allgather(value)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, message: str, code: int = 1) -> None:
        if message:
            sys.stderr.write(message.rstrip("\n") + "\n")
            sys.stderr.flush()
        self.comm.Abort(code)

    def processes(self) -> list[tuple[str, int]]:
        return self._processes

    def close(self) -> None:
        """Wait for all ranks; from here on a rank may end its program."""
        self.comm.Barrier()
        self._closed = True

    def _abort_unless_closed(self) -> None:
        if self._closed or self.world_size == 1:
            return
        error = getattr(sys, "last_value", None)  # set when an uncaught exception ended the program
        reason = f"{type(error).__name__}: {error}" if error is not None else "an error (see above)"
        self.abort(f"tinyllm: rank {self.rank} of {self.world_size} stopped with {reason}; ending all ranks")

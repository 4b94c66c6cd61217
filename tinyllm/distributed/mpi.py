"""`MPICommunicator`: the collectives on MPI through mpi4py's buffer methods (no pickling of arrays).

Started by `mpiexec -n N python ...` (or a cluster's launcher). mpi4py passes NumPy arrays to MPI
as raw buffers, in place where MPI allows it (`MPI.IN_PLACE`).

A rank that dies must not leave the others waiting in a collective forever. MPI itself ends the
job when a process exits abnormally, but its message names only a process id; so each rank also
watches the next rank on its own host (`os.kill(pid, 0)` ten times a second) and, when that
process is gone, aborts the job with a message naming the lost rank. A rank that raises aborts
the job itself (`abort_on_error`). Ranks on other hosts are left to MPI's own clean-up.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from tinyllm.distributed.communicator import Communicator, Pending
from tinyllm.errors import DistributedError

WATCH_INTERVAL = 0.1  # seconds between two looks at the watched rank


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

    def __init__(self, comm=None, watch: bool = True) -> None:
        self.MPI = import_mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.world_size = self.comm.Get_rank(), self.comm.Get_size()
        self.hosts = self.allgather_object((socket.gethostname(), os.getpid()))
        self._watchdog = _Watchdog(self) if watch and self.world_size > 1 else None

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

    def close(self) -> None:
        """Stop watching the neighbour (before any rank may exit normally), then wait for all ranks."""
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        self.comm.Barrier()


class _Watchdog:
    """A daemon thread that aborts the job, naming the rank, when the next rank on this host is gone."""

    def __init__(self, communicator: MPICommunicator) -> None:
        host = communicator.hosts[communicator.rank][0]
        same_host = [rank for rank, (name, _) in enumerate(communicator.hosts) if name == host]
        self.communicator = communicator
        self.watched = same_host[(same_host.index(communicator.rank) + 1) % len(same_host)]
        self.pid = communicator.hosts[self.watched][1]
        self._stopped = threading.Event()
        self._thread = None
        if self.watched != communicator.rank:
            self._thread = threading.Thread(target=self._run, name="tinyllm-rank-watchdog", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(WATCH_INTERVAL):
            if not _alive(self.pid):
                c = self.communicator
                c.abort(
                    f"tinyllm: rank {self.watched} of {c.world_size} (pid {self.pid}) stopped; "
                    f"rank {c.rank} ends the job"
                )

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()


def _alive(pid: int) -> bool:
    """Return whether process pid runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc (macOS): os.kill's answer stands
        return True

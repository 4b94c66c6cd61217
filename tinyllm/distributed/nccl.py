"""`NCCLCommunicator`: the same collectives on GPU arrays through NCCL (`cupy.cuda.nccl`).

A host communicator (MPI) starts the ranks and carries the setup: rank 0 makes NCCL's unique id
and the host communicator hands it to every rank; each rank then drives the GPU of its local rank
on its host. CuPy arrays go through NCCL on the current stream, so each collective is ordered
with the kernels around it without a host sync; host (NumPy) buffers, such as the loss and the
stop flag, go through the host communicator.
"""

from __future__ import annotations

from tinyllm.distributed.communicator import Communicator, Pending
from tinyllm.errors import DistributedError


class NCCLCommunicator(Communicator):
    """The ranks of a host communicator (default: the MPI world), exchanging CuPy arrays over NCCL;
    selects this rank's GPU."""

    def __init__(self, host: Communicator | None = None) -> None:
        try:
            import cupy
            from cupy.cuda import nccl
        except ImportError as error:
            raise DistributedError(
                f"NCCL collectives need CuPy with NCCL ({error}); pip install 'tinyllm[gpu]'"
            ) from error
        if host is None:
            from tinyllm.distributed.mpi import MPICommunicator

            host = MPICommunicator()
        self.host, self.rank, self.world_size = host, host.rank, host.world_size
        self.cupy, self.nccl = cupy, nccl
        processes = host.processes()
        local_rank = sum(name == processes[self.rank][0] for name, _ in processes[: self.rank])
        cupy.cuda.Device(local_rank % cupy.cuda.runtime.getDeviceCount()).use()
        unique_id = host.allgather_object(nccl.get_unique_id() if self.rank == 0 else None)[0]
        self.comm = nccl.NcclCommunicator(self.world_size, unique_id, self.rank)
        self._types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}

    def _on_device(self, buffer) -> bool:
        return isinstance(buffer, self.cupy.ndarray)

    def _type(self, buffer):
        name = str(buffer.dtype)
        if name not in self._types:
            raise DistributedError(f"NCCL collectives take float16/32/64 buffers, got {name}")
        return self._types[name]

    def _stream(self) -> int:
        return self.cupy.cuda.get_current_stream().ptr

    def broadcast_(self, buffer, root: int = 0) -> None:
        if not self._on_device(buffer):
            return self.host.broadcast_(buffer, root)
        pointer = buffer.data.ptr
        self.comm.broadcast(pointer, pointer, buffer.size, self._type(buffer), root, self._stream())

    def start_allreduce_mean_(self, buffer) -> Pending:
        if not self._on_device(buffer):
            return self.host.start_allreduce_mean_(buffer)
        pointer = buffer.data.ptr
        self.comm.allReduce(pointer, pointer, buffer.size, self._type(buffer), self.nccl.NCCL_SUM, self._stream())
        buffer /= self.world_size  # queued on the same stream, after the sum
        return Pending()

    def reduce_scatter_mean(self, send, receive) -> None:
        if not self._on_device(send):
            return self.host.reduce_scatter_mean(send, receive)
        self.comm.reduceScatter(
            send.data.ptr, receive.data.ptr, receive.size, self._type(send), self.nccl.NCCL_SUM, self._stream()
        )
        receive /= self.world_size

    def allgather_(self, buffer) -> None:
        if not self._on_device(buffer):
            return self.host.allgather_(buffer)
        count = buffer.size // self.world_size
        own_block = buffer.data.ptr + self.rank * count * buffer.itemsize  # NCCL's in-place form
        self.comm.allGather(own_block, buffer.data.ptr, count, self._type(buffer), self._stream())

    def allgather_object(self, value) -> list:
        return self.host.allgather_object(value)

    def processes(self) -> list[tuple[str, int]]:
        return self.host.processes()

    def barrier(self) -> None:
        self.cupy.cuda.get_current_stream().synchronize()
        self.host.barrier()

    def abort(self, message: str, code: int = 1) -> None:
        self.comm.abort()
        self.host.abort(message, code)

    def close(self) -> None:
        self.cupy.cuda.get_current_stream().synchronize()
        self.comm.destroy()
        self.host.close()

"""The world this process belongs to (the ranks an MPI launcher started), and each rank's random stream."""

from __future__ import annotations

import os

from tinyllm.distributed.communicator import Communicator, LocalCommunicator

# what MPI launchers set in each process they start: MPICH/Hydra and Intel MPI, Open MPI, PMIx, MVAPICH
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_world_size() -> int:
    """Return the number of ranks the MPI launcher started (1 when this process was started directly)."""
    for name in LAUNCHER_SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def init(device: str = "cpu") -> Communicator:
    """Return the communicator of this process: MPI (NCCL for "cuda") under a launcher with more
    than one rank, else a LocalCommunicator; raises DistributedError when MPI is needed but missing.

    Without a launcher nothing MPI is imported, so single-process training needs no MPI library.
    """
    if launched_world_size() == 1:
        return LocalCommunicator()
    from tinyllm.distributed.mpi import MPICommunicator

    mpi = MPICommunicator()
    if str(device).startswith("cuda"):
        from tinyllm.distributed.nccl import NCCLCommunicator

        return NCCLCommunicator(mpi)
    return mpi


def rank_stream_of(random, comm: Communicator) -> None:
    """Move a HostRandom of rank r onto its r-th jumped stream: ranks draw different dropout masks
    from one saved state, so a run is reproducible for a given number of ranks."""
    if comm.rank:
        random.generator = type(random.generator)(random.generator.bit_generator.jumped(comm.rank))

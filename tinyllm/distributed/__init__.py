"""Data-parallel training: the same model on every rank, each rank on its slice of every batch.

`init()` finds the world (MPI under `mpiexec -n N`, else a world of one), `DataParallel` keeps
the replicas equal by averaging gradients in flat buckets, `ZeroAdamW` shards AdamW's moments
across the ranks (ZeRO-1). MPI is imported only when a launcher started several ranks.
"""

from tinyllm.distributed.communicator import Communicator, LocalCommunicator, Pending
from tinyllm.distributed.data_parallel import DataParallel
from tinyllm.distributed.fake import FakeCommunicator, run_ranks
from tinyllm.distributed.world import init, launched_world_size, rank_stream_of
from tinyllm.distributed.zero import ZeroAdamW

__all__ = [
    "Communicator", "DataParallel", "FakeCommunicator", "LocalCommunicator", "Pending", "ZeroAdamW",
    "init", "launched_world_size", "rank_stream_of", "run_ranks",
]  # fmt: skip

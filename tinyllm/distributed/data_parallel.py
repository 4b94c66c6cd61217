"""`DataParallel`: keeps the replicas of a model on every rank equal, as PyTorch's
DistributedDataParallel does.

- At the start, rank 0's parameters are broadcast, so every replica starts from the same weights.
- Gradients are averaged over ranks in flat buckets: the parameters, in reverse order of
  registration (roughly the order backward finishes them), are packed into buffers of about
  `bucket_mb` each, one buffer and one collective per bucket rather than one per parameter.
- With `overlap`, a hook on each parameter counts the gradients of its bucket that backward has
  completed; when a bucket is complete its allreduce starts while backward goes on with the
  layers below. Buckets start in a fixed order (bucket i only after buckets < i), so every rank
  issues the same collectives in the same order. `sync_gradients()` starts what is left, waits
  for all and puts the means back into `.grad`.
- `no_sync()`: micro-batches of gradient accumulation add into `.grad` without communicating;
  the backward after the block syncs the sum.

A parameter that took no part in backward gets a zero gradient, averaged with the other ranks'
gradients, so every replica applies the same update.
"""

from __future__ import annotations

import contextlib

from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.distributed.communicator import Communicator

DEFAULT_BUCKET_MB = 4.0


class _Bucket:
    """Parameters whose gradients travel together in one flat buffer."""

    def __init__(self, params: list) -> None:
        self.params = params
        self.offsets = []
        total = 0
        for param in params:
            self.offsets.append(total)
            total += param.numel()
        backend = params[0]._backend
        self.backend = backend
        self.buffer = backend.xp.zeros((total,), dtype=params[0].array.dtype)
        self.waiting = len(params)  # gradients of this backward not yet complete
        self.pending = None  # the collective under way

    def pack_gradients(self) -> None:
        xp = self.backend.xp
        for param, offset in zip(self.params, self.offsets):
            n = param.numel()
            if param.grad is None:
                self.buffer[offset : offset + n] = 0
            else:
                self.buffer[offset : offset + n] = xp.reshape(param.grad.array, (n,))

    def unpack_gradients(self) -> None:
        xp = self.backend.xp
        for param, offset in zip(self.params, self.offsets):
            grad = xp.reshape(self.buffer[offset : offset + param.numel()], param.shape)
            param.grad = Tensor._wrap(grad, self.backend, False, None)  # a view of the bucket


class DataParallel:
    """Wraps a model for data-parallel training over comm; call `sync_gradients()` after backward."""

    def __init__(
        self,
        model,
        comm: Communicator,
        bucket_mb: float = DEFAULT_BUCKET_MB,
        overlap: bool = True,
        reduce_gradients: bool = True,
    ) -> None:
        self.model, self.comm = model, comm
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._syncing = reduce_gradients and comm.world_size > 1
        # a world of one needs no buffers
        self.buckets = _make_buckets(self.params[::-1], int(bucket_mb * 2**20)) if comm.world_size > 1 else []
        self._next_to_start = 0
        self._hooks = []
        self.broadcast_parameters()
        if self._syncing and overlap:
            for bucket in self.buckets:
                for param in bucket.params:
                    self._hooks.append(param.register_post_accumulate_grad_hook(self._hook_for(bucket)))

    def broadcast_parameters(self, root: int = 0) -> None:
        """Overwrite every rank's parameters with root's (bucket by bucket)."""
        for bucket in self.buckets:
            xp = bucket.backend.xp
            for param, offset in zip(bucket.params, bucket.offsets):
                bucket.buffer[offset : offset + param.numel()] = xp.reshape(param.array, (param.numel(),))
            self.comm.broadcast_(bucket.buffer, root)
            for param, offset in zip(bucket.params, bucket.offsets):
                param.array = xp.asarray(
                    xp.reshape(bucket.buffer[offset : offset + param.numel()], param.shape), copy=True
                )
            bucket.buffer[...] = 0

    @contextlib.contextmanager
    def no_sync(self):
        """Within the block, backward only adds into `.grad`; gradients are averaged at the next sync."""
        syncing, self._syncing = self._syncing, False
        try:
            yield
        finally:
            self._syncing = syncing

    def _hook_for(self, bucket: _Bucket):
        def gradient_complete(param) -> None:
            if not self._syncing:
                return
            bucket.waiting -= 1
            if bucket.waiting == 0:
                self._start_ready_buckets()

        return gradient_complete

    def _start_ready_buckets(self) -> None:
        while self._next_to_start < len(self.buckets) and self.buckets[self._next_to_start].waiting == 0:
            self._start(self.buckets[self._next_to_start])

    def _start(self, bucket: _Bucket) -> None:
        bucket.pack_gradients()
        bucket.pending = self.comm.start_allreduce_mean_(bucket.buffer)
        bucket.waiting = 0
        self._next_to_start += 1

    def sync_gradients(self) -> None:
        """Return when every parameter's `.grad` holds the mean of its gradients over all ranks."""
        if not self._syncing:
            return
        while self._next_to_start < len(self.buckets):
            self._start(self.buckets[self._next_to_start])
        for bucket in self.buckets:
            bucket.pending.wait()
            bucket.pending = None
            bucket.unpack_gradients()
            bucket.waiting = len(bucket.params)
        self._next_to_start = 0

    def close(self) -> None:
        """Remove the gradient hooks from the model's parameters."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []


def _make_buckets(params: list, bucket_bytes: int) -> list[_Bucket]:
    """Return buckets of consecutive params (of one dtype and device each) of about bucket_bytes."""
    buckets, current, size = [], [], 0
    for param in params:
        key = (param._backend, param.array.dtype)
        if current and (size >= bucket_bytes or (current[0]._backend, current[0].array.dtype) != key):
            buckets.append(_Bucket(current))
            current, size = [], 0
        current.append(param)
        size += param.numel() * np.dtype(param.dtype).itemsize
    if current:
        buckets.append(_Bucket(current))
    return buckets

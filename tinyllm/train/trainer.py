"""`Trainer`: the training loop of a language model, with evaluation, logging, checkpoints and exact resume.

One optimizer step: set the LR from the schedule, run `grad_accum_steps` micro-batches (each
loss scaled by 1/grad_accum_steps so the gradients sum to the mean), clip the global gradient
norm, step the optimizer. Every `eval_interval` steps the loss on fixed validation batches is
logged with its perplexity; every `save_interval` steps (and at the end) a checkpoint is written.

Exact resume: a checkpoint holds the weights, the optimizer moments and step counts, the global
RNG state (dropout), the batch sampler's RNG state (data position) and the step, so N steps in one
run give bit-identical weights to k steps, stop, resume, N - k steps.

Data parallelism: with a communicator of N ranks (`tinyllm.distributed.init()` under `mpiexec -n
N`), every rank draws the same global batch of `batch_size` rows and trains on its own slice of
batch_size / N rows; `DataParallel` averages the gradients (or `ZeroAdamW` reduce-scatters them
with `zero=1`), so N ranks take the steps one process takes on the same batches. Only rank 0
writes the log, the checkpoints and the progress bar. A stop (Ctrl-C, or SIGTERM under several
ranks) is agreed by all ranks at the end of a step, so all stop after the same step and save.

Ctrl-C: the first SIGINT asks the loop to stop after the current step, then a checkpoint is saved
and `fit` returns with `interrupted=True`; a KeyboardInterrupt raised inside a step (a second
Ctrl-C, or one from a callback) rolls the step back to its start (no update has been applied
yet) and saves the same way. Only an interrupt inside the optimizer update itself cannot be
saved consistently; it propagates and the previous checkpoint stays.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tinyllm.backend import RANDOM, np
from tinyllm.data import BatchSampler, Corpus, fixed_batches
from tinyllm.distributed import Communicator, DataParallel, LocalCommunicator, ZeroAdamW, rank_stream_of
from tinyllm.errors import CheckpointError, ConfigError
from tinyllm.io import Checkpoint, load_checkpoint, save_checkpoint
from tinyllm.kernels import tune_for_training
from tinyllm.optim import SGD, AdamW, WarmupCosine, clip_grad_norm, set_lr, weight_decay_groups
from tinyllm.train.config import TrainConfig
from tinyllm.train.evaluate import evaluate_loss, language_model_loss, perplexity
from tinyllm.train.log import JsonlLog, plot_log
from tinyllm.train.restore import model_record


@dataclass
class FitResult:
    """What `Trainer.fit` reports: the step reached, whether it was interrupted, the last losses."""

    step: int
    interrupted: bool
    val_loss: float | None
    train_loss: float | None


def make_optimizer(model, config: TrainConfig):
    """Return the optimizer of config for model's parameters (decay only on matrices)."""
    groups = weight_decay_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return SGD(groups, lr=config.lr, momentum=config.momentum)
    return AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2))


class Trainer:
    """Trains `model` (ids (B, T) -> logits (B, T, V)) on a Corpus, data-parallel over comm's ranks
    when one is given; writes its log and checkpoints to out_dir."""

    def __init__(
        self,
        model,
        tokenizer,
        corpus: Corpus,
        config: TrainConfig,
        out_dir=None,
        callbacks=(),
        progress: bool = True,
        comm: Communicator | None = None,
    ) -> None:
        self.model, self.tokenizer, self.corpus, self.config = model, tokenizer, corpus, config
        self.comm = comm = comm if comm is not None else LocalCommunicator()
        if config.batch_size % comm.world_size:
            raise ConfigError(
                f"batch_size {config.batch_size} (the global batch) does not split over {comm.world_size} ranks"
            )
        self.block_size = model.config.block_size
        corpus.check(self.block_size)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.progress = progress and comm.is_main
        model.to(config.device)
        model.train()
        self.data_parallel = DataParallel(model, comm, reduce_gradients=not config.zero)
        self.optimizer = make_optimizer(model, config)
        if config.zero:
            self.optimizer = ZeroAdamW(self.optimizer, comm)
        rank_stream_of(RANDOM, comm)
        self.schedule = WarmupCosine(config.lr, config.warmup_iters, config.decay_iters, config.min_lr)
        self.sampler = BatchSampler(corpus.train, config.batch_size, self.block_size, seed=config.seed)
        self.val_batches = fixed_batches(
            corpus.val, config.eval_iters, config.batch_size, self.block_size, config.seed + 1
        )
        self.step = 0
        self.log = JsonlLog(self.out_dir / "log.jsonl") if self.out_dir is not None and comm.is_main else None
        self.last_val_loss: float | None = None
        self._recent_losses: list[float] = []
        self._stop_requested = False
        self._updating = False
        self._step_start = None  # (RNG state, data position) at the start of the step under way

    # -- resume -----------------------------------------------------------------------------------
    def load_checkpoint(self, checkpoint: Checkpoint | None = None) -> None:
        """Restore weights, optimizer, RNG states and step from a checkpoint (default: out_dir's)."""
        checkpoint = checkpoint or load_checkpoint(self.out_dir)
        expected = {name: param.shape for name, param in self.model.named_parameters()}
        found = {name: tuple(array.shape) for name, array in checkpoint.weights.items()}
        if found != expected:  # checked before anything is loaded, so a mismatch changes nothing
            differing = sorted(
                set(found) ^ set(expected) | {n for n in found if n in expected and found[n] != expected[n]}
            )
            raise CheckpointError(f"the checkpoint's weights do not fit the model: {differing[:5]} differ")
        self.model.load_state_dict(checkpoint.weights)
        if checkpoint.optimizer is not None:
            self.optimizer.load_state_dict(checkpoint.optimizer)
        state = checkpoint.state
        self.step = checkpoint.step
        RANDOM.set_state(state["rng"])
        rank_stream_of(RANDOM, self.comm)
        self.sampler.load_state_dict(state["data"])
        self.last_val_loss = state.get("val_loss")
        if self.log is not None:
            self.log.truncate_after(self.step)

    def checkpoint(self) -> Checkpoint:
        """Return the complete state of training now."""
        return Checkpoint(
            weights=self.model.state_dict(),
            config=model_record(self.model),
            tokenizer=self.tokenizer.to_dict(),
            optimizer=self.optimizer.state_dict(),
            state={
                "step": self.step,
                "rng": RANDOM.get_state(),
                "data": self.sampler.state_dict(),
                "train_config": self.config.to_dict(),
                "val_loss": self.last_val_loss,
            },
        )

    def save(self) -> Path | None:
        """Write a checkpoint to out_dir and return its folder (nothing without an out_dir, or on ranks but 0).

        Every rank calls it: with ZeRO-1 the optimizer state is gathered from all of them."""
        if self.out_dir is None:
            return None
        checkpoint = self.checkpoint()
        return save_checkpoint(self.out_dir, checkpoint) if self.comm.is_main else None

    def plot(self) -> Path | None:
        """Write out_dir/loss.png from the log and return its path (nothing without an out_dir)."""
        records = self.log.read() if self.log is not None else []
        if not records:
            return None
        return plot_log(records, self.out_dir / "loss.png", title=f"{self.tokenizer.type_name} GPT, step {self.step}")

    # -- the loop ---------------------------------------------------------------------------------
    def train_step(self) -> dict:
        """Run one optimizer step; return its record {"kind", "step", "loss", "lr", "grad_norm", "ms"}."""
        started = time.perf_counter()
        self._step_start = (RANDOM.get_state(), self.sampler.state_dict())
        lr = self.schedule(self.step)
        set_lr(self.optimizer, lr)
        accum = self.config.grad_accum_steps
        loss_sum = 0.0
        for micro_step in range(accum):
            x, y = self._rows_of_this_rank(self.sampler.next())  # (B / world_size, T) each
            loss = language_model_loss(self.model, x, y, self.config.device)
            with self.data_parallel.no_sync() if micro_step < accum - 1 else contextlib.nullcontext():
                (loss * (1.0 / accum)).backward()
            loss_sum += float(loss.item())
        self.data_parallel.sync_gradients()
        loss_sum = self._mean_over_ranks(loss_sum)
        grad_norm = None
        if self.config.grad_clip > 0 and isinstance(self.optimizer, ZeroAdamW):
            grad_norm = self.optimizer.clip_grad_norm(self.config.grad_clip)
        elif self.config.grad_clip > 0:
            grad_norm = clip_grad_norm(list(self.model.parameters()), self.config.grad_clip)
        self._updating = True
        self.optimizer.step()
        self.step += 1
        self._step_start = None
        self._updating = False
        self.optimizer.zero_grad()
        ms = (time.perf_counter() - started) * 1000
        return {
            "kind": "train",
            "step": self.step,
            "loss": loss_sum / accum,
            "lr": lr,
            "grad_norm": grad_norm,
            "ms": ms,
        }

    def evaluate(self) -> dict:
        """Return the eval record: validation loss and perplexity, and the mean train loss since the last one."""
        local_batches = [self._rows_of_this_rank(batch) for batch in self.val_batches]
        val_loss = self._mean_over_ranks(evaluate_loss(self.model, local_batches, self.config.device))
        train_loss = sum(self._recent_losses) / len(self._recent_losses) if self._recent_losses else None
        self._recent_losses = []
        self.last_val_loss = val_loss
        return {
            "kind": "eval",
            "step": self.step,
            "val_loss": val_loss,
            "val_ppl": perplexity(val_loss),
            "train_loss": train_loss,
        }

    def _rows_of_this_rank(self, batch):
        """Return this rank's slice of the rows of a global (x, y) batch."""
        start, stop = self.comm.block(len(batch[0]))
        return batch[0][start:stop], batch[1][start:stop]

    def _mean_over_ranks(self, value: float) -> float:
        """Return the mean over ranks of a number (each rank's slice has as many tokens)."""
        buffer = np.array([value], dtype=np.float64)
        self.comm.allreduce_mean_(buffer)
        return float(buffer[0])

    def fit(self) -> FitResult:
        """Train until config.max_iters steps (counting steps of earlier runs when resumed)."""
        config = self.config
        tune_for_training(one_pool=self.comm.world_size == 1)  # ranks' spinning threads would share the cores
        bar = _progress_bar(config.max_iters, self.step, self.progress)
        previous_handlers = self._install_stop_handlers()
        interrupted, train_loss = False, None
        self._stop_requested = False
        self._said_validation_set = False
        try:
            if self.step == 0 and self.step < config.max_iters:
                self._record(self.evaluate(), bar)
            while self.step < config.max_iters:
                record = self.train_step()
                train_loss = record["loss"]
                self._recent_losses.append(train_loss)
                if self.step % config.log_interval == 0 or self.step == config.max_iters:
                    self._record(record, bar)
                if self.step % config.eval_interval == 0 or self.step == config.max_iters:
                    self._record(self.evaluate(), bar)
                bar.update(1)
                bar.set_postfix_str(
                    f"loss {train_loss:.4f}"
                    + (f", val {self.last_val_loss:.4f}" if self.last_val_loss is not None else "")
                )
                if self.step % config.save_interval == 0 or self.step == config.max_iters:
                    self.save()
                for callback in self.callbacks:
                    callback(self, record)
                if self._mean_over_ranks(float(self._stop_requested)) > 0:  # one rank asked: all stop here
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if self._updating:
                print("\ninterrupted inside the optimizer update: no checkpoint written", file=sys.stderr)
                raise
            if self._step_start is not None:  # stopped inside a step: undo its random draws and gradients
                RANDOM.set_state(self._step_start[0])
                self.sampler.load_state_dict(self._step_start[1])
                self._step_start = None
                self.optimizer.zero_grad()
            interrupted = True
            folder = self.save()
            where = f", checkpoint saved to {folder.parent}" if folder is not None else ""
            if self.comm.is_main:
                print(f"\ninterrupted at step {self.step}{where}", file=sys.stderr)
        finally:
            bar.close()
            self.plot()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        return FitResult(self.step, interrupted, self.last_val_loss, train_loss)

    def _record(self, record: dict, bar) -> None:
        if self.log is not None:
            self.log.write(record)
        if record["kind"] == "eval" and self.comm.is_main:
            said, self._said_validation_set = self._said_validation_set, True  # once per fit is enough
            bar.write(
                f"step {record['step']}: val loss {record['val_loss']:.4f}, perplexity {record['val_ppl']:.2f}"
                + ("" if said else f" ({self.validation_set})"),
                file=sys.stderr,
            )
        elif bar.disable and self.progress:  # off a terminal: a log line instead of the bar's frames
            print(format_train_record(record, self.config.max_iters), file=sys.stderr, flush=True)

    @property
    def validation_set(self) -> str:
        """Return what the validation loss is measured on, in words."""
        config = self.config
        return (
            f"validation set: the last {config.val_fraction:.0%} of {config.data or 'the bundled Shakespeare'}, "
            f"{len(self.val_batches)} fixed batches of {config.batch_size} x {self.block_size} tokens"
        )

    def _install_stop_handlers(self) -> dict:
        """Make the first Ctrl-C a request to stop after this step (main thread only); return the old handlers.

        Under several ranks SIGTERM (what `mpiexec` forwards when it is killed) asks the same, and
        a second signal asks again rather than interrupting at once: a rank leaving in the middle
        of a step would leave the others waiting in a collective."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        distributed = self.comm.world_size > 1

        def request_stop(signum, frame):
            self._stop_requested = True
            if not distributed:
                signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C interrupts at once

        signals = (signal.SIGINT, signal.SIGTERM) if distributed else (signal.SIGINT,)
        return {signum: signal.signal(signum, request_stop) for signum in signals}


def format_train_record(record: dict, max_iters: int) -> str:
    """Return the one-line log of a train record: step, loss, learning rate, gradient norm, time."""
    norm = "" if record.get("grad_norm") is None else f", grad norm {record['grad_norm']:.3f}"
    return (
        f"step {record['step']}/{max_iters}: loss {record['loss']:.4f}, lr {record['lr']:.2e}{norm}, "
        f"{record['ms']:.0f} ms/step"
    )


def _progress_bar(total: int, initial: int, enabled: bool):
    """Return a tqdm bar on a terminal; elsewhere (a log file, a pipe) a disabled one, since its
    carriage-return frames would fill the file: `_record` prints one line per log interval instead."""
    from tqdm.auto import tqdm

    on_terminal = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not on_terminal, desc="train", unit="step", dynamic_ncols=True)

"""Data-parallel training on several processes with torch.distributed (seed §8: how training goes
past one device).

    torchrun --nproc_per_node 2 -m minilm train --backend torch --batch-size 16 --out runs/dp
    minilm train --backend torch --batch-size 16 --grad-accum 2 --out runs/accum   # one process

torchrun (it comes with torch) starts the same command N times. Each copy is a *process*, or
*rank*, numbered 0 .. N-1, and reads from environment variables who it is (RANK, WORLD_SIZE = N,
LOCAL_RANK = its number on this machine) and where to meet the others (MASTER_ADDR, MASTER_PORT).
`join` connects them into a *process group* that adds tensors up across processes: gloo between
CPU processes, NCCL between GPUs (one GPU per process, the LOCAL_RANK-th).

One optimizer step on N processes with K micro-batches each (`minilm.steps`; N = K = 1 is the
ordinary step):

    every process draws the same batch of B rows (the same generator, seeded alike)
    process r takes rows [r B/N, (r + 1) B/N), its shard, and cuts it into K micro-batches
    each micro-batch: forward, loss x its share of the batch's targets, backward (autograd adds
                      each micro-batch's gradient into .grad)
    all-reduce        every process sends its sum of gradients and receives the sum over all
    update            every process clips and applies AdamW to the same gradient, so the weights
                      stay equal everywhere without ever being sent

Why this is the run that one process makes. The loss is a mean over the n targets the batch
scores (n = B T for CLM; for MLM only the masked tokens), and a mean splits into parts:

    L = (1/n) sum_i l_i = sum_p (n_p / n) L_p          L_p the mean over part p's n_p targets
    dL/dw = sum_p (n_p / n) dL_p/dw

so the gradient of the batch is the sum of its parts' gradients, each weighted by its share of the
targets. Adding over micro-batches (autograd) and over processes (the all-reduce) computes that
one sum in another order: the losses and the weights agree with one process's to float rounding
(tests/test_distributed.py: 2 processes x B/2, 1 x B and 1 x B/2 with 2 micro-batches). When the
shares are equal (CLM, where every token is a target) the sum is the average of the processes'
means. When they are not (MLM masks 15% of the tokens at random, so shards hold different numbers
of masked tokens) the plain average would count the tokens of a shard with few masks more.

The all-reduce is torch's DistributedDataParallel (DDP, `data_parallel`): the twin runs wrapped in
it, and during the backward DDP sends the gradients in buckets, each as soon as its gradients are
ready, so the communication overlaps the rest of the backward. Two things to know about it:
(1) DDP *averages* the processes' gradients (divides their sum by N), so each process multiplies
its weighted loss by N before the backward: the average of N x (its part) is the sum above.
(2) DDP synchronises the parameters that require a gradient when it wraps the model, and must be
told if the loss leaves some without one (a pooler under an MLM loss): the step wraps the model
anew when gradual unfreezing changes the trainable set, and looks once, with a forward and backward
of its own, whether the loss reaches them all. Only the last micro-batch of a step synchronises
(`synchronising`; the others run under DDP's `no_sync`).

Only rank 0 shows progress, evaluates and writes the run directory (checkpoints, metrics.json with
`world_size` and `per_rank_batch`); the others wait at a barrier meanwhile. Dropout: process r
draws its masks from torch.manual_seed(seed + r), so that the shards are not dropped alike; runs
with dropout therefore equal the one-process run in distribution, not mask for mask (the
equivalence above is without dropout, as between the two backends). A checkpoint keeps every
process's generator, so a run resumed on as many processes continues exactly.

A process that fails prints its error (one line naming its rank, for bad input) and exits; the
others, waiting for it in a collective, stop with one line saying so (`ProcessFailed`), or are
stopped by torchrun, which exits with a non-zero status and a summary naming the rank that failed
first. The NumPy backend
trains in one process: under torchrun with more than one it is an error (`--grad-accum` works on
it). torch is imported only when torchrun started several processes.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NamedTuple

from minilm.common.backends import rng_state, set_rng_state
from minilm.common.checks import positive_int


class World(NamedTuple):
    """This process's place: its rank among `size` processes."""

    rank: int
    size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that reports, evaluates and writes."""
        return self.rank == 0


ALONE = World(rank=0, size=1)
# the help text of --grad-accum, for every loop's settings
GRAD_ACCUM_HELP = ("micro-batches per step: each process computes its share of the batch in K "
                   "pieces, one forward and backward each, and adds up their gradients before "
                   "the update (the same step in less memory)")


class ProcessFailed(RuntimeError):
    """A collective could not complete: another process of the group stopped (crashed, was
    killed) while this one waited for it."""


def _environment_int(name: str, default: str, minimum: int, below: int | None = None) -> int:
    """The integer torchrun put in the environment variable `name` (`default` when unset), checked
    to lie in [minimum, below): one set by hand (WORLD_SIZE=abc, 0) is refused naming it, rather
    than failing inside int() or torch."""
    text = os.environ.get(name, default)
    value = int(text) if text.strip().isdecimal() else None
    if value is None or value < minimum or (below is not None and value >= below):
        bound = f"in [{minimum}, {below})" if below is not None else f">= {minimum}"
        raise ValueError(f"the environment variable {name} must be an int {bound} (torchrun sets "
                         f"it), got {text!r}")
    return value


def launched_processes() -> int:
    """How many processes torchrun started (its WORLD_SIZE), 1 without torchrun."""
    return _environment_int("WORLD_SIZE", "1", 1)


def rank_label() -> str:
    """' (rank r of N)' in a process that torchrun started among several, else ''."""
    try:
        processes = launched_processes()
    except ValueError:  # a wrong WORLD_SIZE: this labels the error that says so
        return ""
    return "" if processes == 1 else f" (rank {os.environ.get('RANK', '?')} of {processes})"


def current() -> World:
    """The process group this process belongs to, or ALONE when none has been initialised."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return ALONE
    return World(dist.get_rank(), dist.get_world_size())


def join(backend: str) -> World:
    """This process's place among the processes torchrun started: ALONE without torchrun (or with
    one process); otherwise the process group, initialised here on the first call (gloo, or gloo
    and NCCL on a machine with GPUs, each process then on GPU LOCAL_RANK) and destroyed when the
    process exits. A group the caller initialised is used as it is. `backend` "numpy" with several
    processes is a ValueError: the NumPy reference trains in one process."""
    if current() != ALONE:
        return current()
    processes = launched_processes()
    if processes == 1:
        return ALONE
    if backend != "torch":
        raise ValueError(f"--backend {backend} trains in one process, but torchrun started "
                         f"{processes}: use --backend torch (the twin, whose gradients "
                         "torch.distributed adds up), or run without torchrun (--grad-accum K "
                         "cuts each batch into K micro-batches in one process)")
    _environment_int("RANK", "", 0, below=processes)  # torch would fail inside int()
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():  # before the model moves to "cuda": one GPU per process
        torch.cuda.set_device(_environment_int("LOCAL_RANK", "0", 0, torch.cuda.device_count()))
        dist.init_process_group("cpu:gloo,cuda:nccl")  # tensors on a GPU go through NCCL
    else:
        dist.init_process_group("gloo")
    atexit.register(dist.destroy_process_group)
    return current()


def join_run(settings) -> World:
    """This process's place in a run with these settings (a TrainSettings or FinetuneSettings):
    `join(settings.backend)`, then per_rank_batch's check that settings.batch_size cuts into the
    processes' settings.grad_accum micro-batches."""
    world = join(settings.backend)  # under torchrun, this process's rank
    per_rank_batch(settings.batch_size, settings.grad_accum, world)
    return world


def per_rank_batch(batch_size: int, grad_accum: int, world: World) -> int:
    """The rows each process computes per step, batch_size / world.size, checked to cut into
    `grad_accum` equal micro-batches (ValueError naming the flags otherwise); both counts >= 1."""
    batch_size = positive_int("--batch-size", batch_size)
    parts = world.size * positive_int("--grad-accum", grad_accum)
    if batch_size % parts:
        processes = f"{world.size} processes x " if world.size > 1 else ""
        raise ValueError(f"--batch-size {batch_size} does not cut into {processes}--grad-accum "
                         f"{grad_accum} equal micro-batches: make it a multiple of {parts}")
    return batch_size // world.size


def data_parallel(model, find_unused_parameters: bool):
    """`model` wrapped in torch's DistributedDataParallel for this process's group: run forward
    and backward through the wrapper and, during the backward, the gradients are averaged across
    the processes (in buckets, each sent as soon as its gradients are ready). On a GPU it holds
    the model's device. `find_unused_parameters` when the loss leaves some parameter without a
    gradient (the pooler under an MLM loss): DDP then looks for them after every forward, and
    leaves their .grad None, as autograd does alone. The parameters it synchronises are those
    that require a gradient when it wraps the model, so a new set of frozen parameters needs a
    new wrapper."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    with _together("wrapping the model for data parallelism"):
        return DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)


@contextlib.contextmanager
def synchronising(wrapped, last: bool):
    """The forward and backward of one micro-batch through `data_parallel`'s wrapper: only the
    last micro-batch of a step averages the gradients across processes (earlier ones only add
    theirs into .grad, under DDP's no_sync); a process gone meanwhile is `ProcessFailed`."""
    if not last:
        with wrapped.no_sync():
            yield
        return
    with _together("adding up the gradients"):
        yield


def sum_over_processes(value: float, world: World) -> float:
    """The sum of `value` over the processes of `world`, the same on all of them."""
    if world.size == 1:
        return value
    import torch
    import torch.distributed as dist

    total = torch.tensor(value, dtype=torch.float64)
    with _together("adding up the losses"):
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.item()


def barrier(world: World) -> None:
    """Wait until every process gets here (nothing to wait for alone)."""
    if world.size > 1:
        import torch.distributed as dist

        with _together("waiting for rank 0"):
            dist.barrier()


def seed_dropout(world: World, seed: int) -> None:
    """Process r of several draws its dropout masks from torch.manual_seed(seed + r) (alone, the
    seeding rule of `minilm.common.backends` stands: seed)."""
    if world.size > 1:
        import torch

        torch.manual_seed(seed + world.rank)


def generator_states(model, world: World) -> list[dict] | None:
    """Every process's dropout-generator state (`rng_state`), gathered on all of them, or None
    alone. Every process must call it at the same step: it is a collective."""
    if world.size == 1:
        return None
    import torch.distributed as dist

    states = [None] * world.size
    with _together("gathering the generators' states"):
        dist.all_gather_object(states, rng_state(model))
    return states


def restore_generators(model, states: list[dict] | None, world: World) -> None:
    """Put back this process's generator from `generator_states` of the checkpoint (`states`,
    None for a one-process run). On another number of processes a run with dropout cannot draw
    the masks it would have (ValueError); without dropout nothing depends on them."""
    saved = 1 if states is None else len(states)
    if saved == world.size:
        if states is not None:
            set_rng_state(model, states[world.rank])
        return
    if model.config.dropout > 0:
        raise ValueError(f"the run was checkpointed by {saved} process(es) and is resumed by "
                         f"{world.size}: with dropout {model.config.dropout} each process draws "
                         "its own dropout masks, so resume it with torchrun --nproc_per_node "
                         f"{saved}" + (" (or without torchrun)" if saved == 1 else ""))


@contextlib.contextmanager
def _together(what: str):
    """Run a collective (or a forward and backward whose backward is one); when it fails because
    another process is gone, say that in one line (`ProcessFailed`) rather than with the
    transport's message ("Connection closed by peer"). Any other error, this process's own (say,
    out of memory in its forward), goes on as it is, traceback and all."""
    try:
        yield
    except RuntimeError as error:
        if not _from_the_transport(error):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ProcessFailed(f"{what}: another process stopped, so this one stops too (its own "
                            f"error is above; torchrun's summary names its rank). The "
                            f"transport said: {first_line}") from None


def _from_the_transport(error: RuntimeError) -> bool:
    """Whether `error` comes from the communication between the processes: torch's DistError
    (NCCL's errors among them) or gloo's, which are plain RuntimeErrors raised in gloo's code."""
    import torch.distributed as dist

    return isinstance(error, dist.DistError) or "gloo" in str(error)

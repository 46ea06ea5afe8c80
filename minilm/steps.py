"""One training step, per backend: the one place in minilm where a batch becomes a weight update.

    step = make_step(model, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0)
    for t in range(total_steps):
        loss = step(inputs, targets, lr=lr_schedule(t, ...))

Every loop uses it: pre-training (`minilm.train`, a Decoder or an Encoder on next-token or masked
targets), fine-tuning (`minilm.finetune`, a SequenceClassifier on labels) and the CPU benchmark.
`inputs` is the tuple of arrays the model's `forward` takes (`(ids,)` for a Decoder, `(ids, mask,
segments)` for BERT); `targets` are class ids, IGNORE_INDEX (-100) where nothing is to be predicted.
One step is

    logits = model(*inputs)                       (B, T, V) or (B, L)
    loss   = mean cross-entropy over kept targets
    g      = d loss / d params                    the hand-written backward, or autograd
    g      = g * min(1, max_norm / ||g||)         clipping by the global norm of trainable grads
    params = AdamW(params, g, lr * lr_scale[name])    frozen parameters neither move nor advance

Two fine-tuning controls are arguments with neutral defaults (seed §3.4): `lr_scale` (name ->
multiplier of the learning rate, e.g. layer-wise decay; default 1 everywhere) and, at each step,
`frozen` (names not updated this step, e.g. gradual unfreezing; default none).

A batch may be computed in pieces (`grad_accum`, `world`; `minilm.distributed` says why it is the
same step): process r of N takes rows [r B/N, (r + 1) B/N) of it, in `grad_accum` micro-batches,
one forward and backward each, whose losses are weighted by their share of the batch's scored
targets (`micro_batches`); the gradients are added up, across micro-batches by accumulation and
across processes by torch's DistributedDataParallel, before the clipping and AdamW, which are then
the same on every process.

Both classes do exactly the same arithmetic, so with the same weights, batches and no dropout their
loss curves agree to float rounding (tests/test_steps.py). Weight decay follows one rule in both
(`default_decay_rule`): matrices and embeddings (ndim >= 2) decay, biases and LayerNorm parameters
do not. A parameter the loss does not reach (a pooler under a token-classification or MLM loss, the
MLM head under a classifier) has no gradient in torch (.grad None) and torch's AdamW skips it; the
NumPy step leaves it alone the same way, as if frozen for that step: it neither moves, decays, nor
gets optimizer state, and it is not in the clipping norm.

`dtype="bfloat16"` (the twin only, `--dtype bfloat16`) is mixed precision: the forward and the loss
run under `torch.autocast`, which does the matrix products in bfloat16 while the weights, their
gradients and AdamW's moments stay float32 (bfloat16 keeps float32's range with 8 bits of
mantissa, so, unlike float16, it needs no loss scaling).

A step's `state_dict()` is its optimizer's state (Adam's moments and step counts) by parameter name,
in one format for both backends (`<slot>.<name>`, NumPy arrays), which is what a checkpoint saves
and `load_state_dict` puts back when a run resumes, after one check for both (`AdamW.check_state`).
`check_finite_loss` is how both loops notice that a run has diverged.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

import numpy as np

from minilm import data, distributed
from minilm.common.backends import check_dtype, is_torch_model, to_numpy
from minilm.common.checks import number_in, positive_int
from minilm.common.names import IGNORE_INDEX
from minilm.distributed import ALONE, World, current
from minilm.numpy.models import loss_and_backward
from minilm.numpy.optim import (
    AdamW,
    check_betas,
    check_lr_scale,
    clip_grad_norm,
    default_decay_rule,
)


class NumpyStep:
    """The reference: the model's hand-written backward and minilm's AdamW."""

    def __init__(self, model, weight_decay: float, betas=(0.9, 0.999), grad_clip: float = 1.0,
                 lr_scale: Mapping[str, float] | None = None, grad_accum: int = 1):
        self.model = model
        # lr=0 until the first step: each step gives the learning rate of the schedule
        self.optimizer = AdamW(model.params, lr=0.0, betas=betas, weight_decay=weight_decay,
                               lr_scale=lr_scale)
        self.grad_clip = number_in("grad_clip", grad_clip, "(0, inf)")
        self.grad_accum = positive_int("grad_accum", grad_accum)

    def __call__(self, inputs: tuple, targets: np.ndarray, lr: float,
                 frozen: frozenset[str] = frozenset()) -> float:
        model = self.model.train()
        # A diverging run overflows: its inf or NaN loss is reported once, by the loop's
        # check_finite_loss, as in the twin, not first by NumPy's warnings from inside the step
        with np.errstate(over="ignore", invalid="ignore"):
            loss = self.gradients(inputs, targets)
            # Frozen gradients are computed (the backward passes through them) but not applied,
            # so the clipping norm counts only the trainable ones, as in torch where they do not
            # exist; nor are the zeros of parameters the backward never reached (.grad None).
            left_alone = frozen | (model.grads.keys() - model.reached)
            clip_grad_norm({n: g for n, g in model.grads.items() if n not in left_alone},
                           self.grad_clip)
            self.optimizer.frozen = left_alone
            self.optimizer.step(model.grads, lr=lr)
        return loss

    def gradients(self, inputs: tuple, targets) -> float:
        """The batch's loss, with its gradient in model.grads: the micro-batches' gradients (the
        backward overwrites model.grads), each times its weight, summed."""
        parts = micro_batches(inputs, targets, self.grad_accum, ALONE)
        if len(parts) == 1:  # the whole batch at once
            return self.loss_and_backward(self.model.forward(*inputs), targets)
        grads = self.model.grads
        summed = {name: np.zeros_like(grad) for name, grad in grads.items()}
        loss = 0.0
        for part_inputs, part_targets, weight in parts:
            loss += weight * self.loss_and_backward(self.model.forward(*part_inputs), part_targets)
            for name, grad in grads.items():
                summed[name] += weight * grad
        for name, grad in grads.items():
            grad[...] = summed[name]
        return loss

    def loss_and_backward(self, logits, targets) -> float:
        """The loss of `logits` against `targets`, with the model's backward run from it:
        cross-entropy (a subclass may use another loss, e.g. `minilm.compress.distill`'s)."""
        return loss_and_backward(self.model, logits, targets, IGNORE_INDEX)

    def state_dict(self) -> dict[str, np.ndarray]:
        """AdamW's state: `exp_avg.<name>`, `exp_avg_sq.<name>` (arrays), `step.<name>` (int64)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Put back what `state_dict` returned (checked: `AdamW.check_state`)."""
        self.optimizer.load_state_dict(state)


class TorchStep:
    """The twin: autograd and torch.optim.AdamW, arranged to do exactly what NumpyStep does.

    Parameters with the same learning-rate scale and the same weight decay share a parameter group
    (two groups without `lr_scale`); each step sets group["lr"] = lr * scale. A frozen parameter
    gets requires_grad=False, so autograd leaves its .grad None and torch's AdamW skips it (no
    move, no decay, no state advance), which is the NumPy optimizer's `frozen`. Every process of
    `world` computes its share of the batch and the gradients are added up across them.
    """

    def __init__(self, model, weight_decay: float, betas=(0.9, 0.999), grad_clip: float = 1.0,
                 lr_scale: Mapping[str, float] | None = None, dtype: str = "float32",
                 grad_accum: int = 1, world: World = ALONE):
        import torch

        from minilm.torch import functional as TF

        check_dtype("torch", dtype)
        self.autocast_dtype = torch.bfloat16 if dtype == "bfloat16" else None

        self.torch, self.cross_entropy = torch, TF.cross_entropy
        self.model = model
        self.named = list(model.named_parameters())
        # the settings NumpyStep's AdamW checks, checked the same way (torch's would accept a
        # NaN or negative weight decay and leave lr_scale values and grad_clip unchecked)
        lr_scale = check_lr_scale(lr_scale, [name for name, _ in self.named])
        weight_decay = number_in("weight_decay", weight_decay, "[0, inf)")
        decays = default_decay_rule(dict(self.named))  # NumpyStep's AdamW uses the same rule
        groups: dict[tuple[float, float], list] = {}
        for name, p in self.named:
            scale = lr_scale.get(name, 1.0)
            decay = weight_decay if decays(name) else 0.0
            groups.setdefault((scale, decay), []).append(p)
        self.optimizer = torch.optim.AdamW(
            [{"params": ps, "lr_scale": scale, "weight_decay": decay}
             for (scale, decay), ps in groups.items()],
            lr=0.0, betas=check_betas(betas),
        )
        self.grad_clip = number_in("grad_clip", grad_clip, "(0, inf)")
        self.grad_accum, self.world = positive_int("grad_accum", grad_accum), world
        self._wrapped = None  # (trainable names, DistributedDataParallel) on several processes

    def __call__(self, inputs: tuple, targets: np.ndarray, lr: float,
                 frozen: frozenset[str] = frozenset()) -> float:
        torch = self.torch
        model = self.model.train()
        for name, p in self.named:
            p.requires_grad_(name not in frozen)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.gradients(model, inputs, targets)
        trainable = [p for _, p in self.named if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(trainable, self.grad_clip)
        self.optimizer.step()
        return loss

    def gradients(self, model, inputs: tuple, targets) -> float:
        """The batch's loss, with its gradient in .grad: this process's micro-batches, each loss
        times its weight (autograd adds their gradients up). On several processes the model runs
        inside DistributedDataParallel, which averages the gradients across them during the last
        micro-batch's backward: each loss is also multiplied by the number of processes, so that
        the average is the sum the batch's gradient is (`minilm.distributed`)."""
        parts = micro_batches(inputs, targets, self.grad_accum, self.world)
        forward = self._data_parallel(model, parts[0])
        loss, alone = 0.0, self.world.size == 1
        for number, (part_inputs, part_targets, weight) in enumerate(parts, start=1):
            with (contextlib.nullcontext() if alone
                  else distributed.synchronising(forward, last=number == len(parts))):
                with self._precision():
                    logits = forward(*part_inputs)  # the twin takes NumPy inputs to its device
                    part_loss = self.loss(logits, part_targets) * weight
                (part_loss * self.world.size).backward()
            loss += part_loss.item()
        return distributed.sum_over_processes(loss, self.world)

    def _data_parallel(self, model, part: tuple):
        """The model alone; on several processes its DistributedDataParallel wrapper, made anew
        when the set of trainable parameters changes (gradual unfreezing). `part`, a micro-batch,
        tells whether the loss reaches every trainable parameter."""
        if self.world.size == 1:
            return model
        trainable = frozenset(name for name, p in self.named if p.requires_grad)
        if self._wrapped is None or self._wrapped[0] != trainable:
            self._wrapped = None  # the old wrapper's gradient hooks go with it
            self._wrapped = (trainable, distributed.data_parallel(
                model, find_unused_parameters=self._leaves_some_unreached(model, part)))
        return self._wrapped[1]

    def _leaves_some_unreached(self, model, part: tuple) -> bool:
        """Whether the loss of `part` gives some trainable parameter no gradient at all (a pooler
        under an MLM loss): one forward and backward in eval mode, so that no dropout mask is
        drawn, whose gradients are returned and dropped, not stored in .grad."""
        part_inputs, part_targets, _ = part
        trainable = [p for _, p in self.named if p.requires_grad]
        with self._precision():
            loss = self.loss(model.eval()(*part_inputs), part_targets)
        model.train()
        gradients = self.torch.autograd.grad(loss, trainable, allow_unused=True)
        return any(gradient is None for gradient in gradients)

    def _precision(self):
        """bfloat16 autocast on the model's device, or nothing (float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device.type
        return self.torch.autocast(device, dtype=self.autocast_dtype)

    def loss(self, logits, targets):
        """The loss tensor of `logits` against `targets`: cross-entropy (see NumpyStep)."""
        targets = self.torch.as_tensor(targets, device=logits.device)
        return self.cross_entropy(logits, targets, IGNORE_INDEX)

    def state_dict(self) -> dict[str, np.ndarray]:
        """torch's AdamW state in NumpyStep's format: per parameter *name* (torch numbers them)
        `exp_avg.<name>`, `exp_avg_sq.<name>` as arrays and `step.<name>` as an int64."""
        state = {}
        for name, p in self.named:
            for slot, value in self.optimizer.state.get(p, {}).items():
                state[f"{slot}.{name}"] = (np.array(int(value), dtype=np.int64) if slot == "step"
                                           else to_numpy(value).copy())
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Put back what `state_dict` returned, checked as NumpyStep checks it (`check_state`:
        torch's would take any shape and fail at the next step), through torch's own
        `load_state_dict`, which numbers parameters in the order of the groups and casts to each
        one's dtype and device."""
        torch = self.torch
        AdamW.check_state(state, {name: tuple(p.shape) for name, p in self.named})
        number = {name: i for i, name in enumerate(self._names_in_group_order())}
        per_parameter: dict[int, dict] = {}
        for key, value in state.items():
            slot, _, name = key.partition(".")
            tensor = (torch.tensor(float(value), dtype=torch.float32) if slot == "step"
                      else torch.from_numpy(np.array(value)))
            per_parameter.setdefault(number[name], {})[slot] = tensor
        saved = self.optimizer.state_dict()
        self.optimizer.load_state_dict({"state": per_parameter,
                                        "param_groups": saved["param_groups"]})

    def _names_in_group_order(self) -> list[str]:
        name_of = {id(p): name for name, p in self.named}
        return [name_of[id(p)] for group in self.optimizer.param_groups for p in group["params"]]


def make_step(model, weight_decay: float, betas=(0.9, 0.999), grad_clip: float = 1.0,
              lr_scale: Mapping[str, float] | None = None, dtype: str = "float32",
              grad_accum: int = 1, world: World | None = None):
    """The step for `model`'s backend: `TorchStep` for a torch module, else `NumpyStep` (float32
    only: NumPy has no bfloat16). `grad_accum` micro-batches per step; `world`, the processes that
    share each batch, defaults to this process's group (`minilm.distributed.current`), and the
    NumPy step runs in one process."""
    world = current() if world is None else world
    if not is_torch_model(model):
        check_dtype("numpy", dtype)
        if world.size > 1:
            raise ValueError(f"the NumPy step runs in one process, not {world.size}: use the "
                             "torch twin for data-parallel training")
        return NumpyStep(model, weight_decay, betas=betas, grad_clip=grad_clip, lr_scale=lr_scale,
                         grad_accum=grad_accum)
    return TorchStep(model, weight_decay, betas=betas, grad_clip=grad_clip, lr_scale=lr_scale,
                     dtype=dtype, grad_accum=grad_accum, world=world)


def micro_batches(inputs: tuple, targets, grad_accum: int, world: World) -> list[tuple]:
    """This process's share of a step's batch, as [(inputs, targets, weight)], one per
    micro-batch: the rows of pieces rank * grad_accum .. (rank + 1) * grad_accum - 1 of the batch
    cut into world.size * grad_accum (`data.split_rows`); weight = the micro-batch's scored
    targets / the batch's, so that the weighted losses add up to the batch's mean loss and their
    gradients to its gradient. Empty pieces (a batch of fewer rows than pieces) are left out; a
    process left with none computes the first piece with weight 0, so that it holds the same
    gradients as the others to add up (zeros)."""
    if grad_accum == 1 and world.size == 1:
        return [(inputs, targets, 1.0)]
    scored = scored_targets(targets)
    pieces = data.split_rows((inputs, targets), world.size * grad_accum)
    mine = [(part_inputs, part_targets, scored_targets(part_targets) / scored if scored else 0.0)
            for part_inputs, part_targets in pieces[world.rank * grad_accum:][:grad_accum]
            if data.count_rows(part_targets)]
    return mine or [(*pieces[0], 0.0)]


def scored_targets(targets) -> int:
    """How many targets a loss averages over: those that are not IGNORE_INDEX (of a tuple of
    targets, e.g. distillation's (labels, teacher_logits), the first: the labels)."""
    labels = targets[0] if isinstance(targets, tuple) else targets
    return int(np.count_nonzero(np.asarray(labels) != IGNORE_INDEX))


class TrainingDiverged(ValueError):
    """The training loss stopped being a finite number: the run cannot go on. (A ValueError: the
    cause is almost always a setting, the learning rate first of all.)"""


def check_finite_loss(loss: float, step: int, what: str = "loss") -> float:
    """`loss` if it is a finite number, else TrainingDiverged naming the step (counted from 1, as
    metrics.jsonl and the progress bar count: the step whose loss, or whose `what`, e.g.
    "validation loss" after it, is not finite) and what to try: a new run, since --resume
    continues with the run's own settings."""
    if not math.isfinite(loss):
        raise TrainingDiverged(
            f"training diverged at step {step}: the {what} is {loss}. Start a new run (another "
            "--out, or delete this one; --resume would keep its settings) with a lower --lr (or a "
            "longer warmup, a smaller --grad-clip); the last checkpoint in the run directory, if "
            "any, holds the weights from before"
        )
    return loss

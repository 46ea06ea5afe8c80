"""Optimizers, gradient clipping and learning-rate schedules for the NumPy models.

The models keep their parameters and gradients in two dicts with the same keys (the Hugging Face
parameter names), so an optimizer here is a loop over names:

    optimizer = AdamW(model.params, lr=3e-4)
    for step in range(total_steps):
        loss = ...; model.backward(dlogits)                 # fills model.grads
        clip_grad_norm(model.grads, max_norm=1.0)
        optimizer.step(model.grads, lr=lr_schedule(step, 3e-4, total_steps, warmup_steps=100))

Every update is written in place (`param -= ...`), so the model, which holds the same arrays, sees
the new values, and float32 parameters stay float32. `SGD` and `AdamW` reproduce `torch.optim.SGD`
and `torch.optim.AdamW` formula for formula (the tests compare them in float64: equal to an ulp or
two, where torch's kernels round differently, e.g. `lerp` for Adam's first moment).

Fine-tuning controls shared by both optimizers:

- `lr_scale`: a per-parameter multiplier; parameter `name` moves with `lr * lr_scale.get(name, 1)`.
  `minilm.layerwise.layerwise_lr_scale` builds the classic layer-wise decay (lower layers learn
  more slowly).
- `frozen`: names (or a predicate on names) that are not updated at all, and whose optimizer state
  (momentum, Adam moments, step count) does not advance; assign a new value between steps for
  gradual unfreezing (`optimizer.frozen = ...`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from minilm.common.checks import (
    check_finite,
    check_flag,
    check_floating,
    int_at_least,
    number_in,
)

Params = Mapping[str, np.ndarray]
FrozenNames = Iterable[str] | Callable[[str], bool] | None


def check_lr_scale(lr_scale: Mapping[str, float] | None, names) -> dict[str, float]:
    """`lr_scale` as a dict (None: empty), each key one of the parameter `names`, each value a
    finite number >= 0: the rule of these optimizers, and of the torch step's parameter groups."""
    _check_known("lr_scale", lr_scale or {}, names)
    return {name: number_in(f"lr_scale[{name!r}]", scale, "[0, inf)")
            for name, scale in (lr_scale or {}).items()}


def _check_known(argument: str, names: Iterable[str], known) -> None:
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"{argument} names unknown parameters: {unknown}")


class Optimizer:
    """What every optimizer here shares: validation, `lr_scale`, `frozen` and the state dict.

    A subclass names its per-parameter state (`buffer_slots`: arrays shaped like the parameter,
    `non_negative_slots`: those of them that cannot hold a negative number, `count_slots`:
    integers such as Adam's step count) and implements `_update`, the update of one parameter.
    State is created lazily on a parameter's first update, as in PyTorch, and lives in
    `self.state[slot][name]`. Learning rates, `lr_scale` values and the subclasses' coefficients
    are finite numbers >= 0 (`number_in`): an infinite lr would make every weight -inf.
    """

    buffer_slots: tuple[str, ...] = ()
    non_negative_slots: tuple[str, ...] = ()
    count_slots: tuple[str, ...] = ()

    def __init__(
        self,
        params: Params,
        lr: float,
        lr_scale: Mapping[str, float] | None = None,
        frozen: FrozenNames = None,
    ):
        lr = number_in("lr", lr, "[0, inf)")
        for name, param in params.items():
            if not (isinstance(param, np.ndarray) and np.issubdtype(param.dtype, np.floating)):
                raise ValueError(f"params[{name!r}] must be a floating-point NumPy array")
        self.params = params  # the model's own dict: updates land in the model's arrays
        self.lr = lr
        self.lr_scale = check_lr_scale(lr_scale, params.keys())
        self.frozen = frozen
        self.state: dict[str, dict[str, np.ndarray | int]] = {
            slot: {} for slot in self.buffer_slots + self.count_slots
        }

    def _check_names(self, argument: str, names: Iterable[str]) -> None:
        _check_known(argument, names, self.params.keys())

    @property
    def frozen(self) -> frozenset[str] | Callable[[str], bool]:
        """The frozen parameters: a set of names, or a predicate `name -> bool`."""
        return self._frozen

    @frozen.setter
    def frozen(self, frozen: FrozenNames) -> None:
        if callable(frozen):
            self._frozen = frozen
            return
        if isinstance(frozen, str):
            raise TypeError("frozen must be a collection of names or a callable, not one string")
        names = frozenset(frozen or ())
        self._check_names("frozen", names)
        self._frozen = names

    def is_frozen(self, name: str) -> bool:
        return self._frozen(name) if callable(self._frozen) else name in self._frozen

    def step(self, grads: Params, lr: float | None = None) -> None:
        """Update every parameter that is not frozen from its gradient.

        `lr` overrides the base learning rate for this step only (this is how a schedule drives
        the optimizer); each parameter then moves with `lr * lr_scale.get(name, 1.0)`.
        """
        lr = self.lr if lr is None else number_in("lr", lr, "[0, inf)")
        self._check_grads(grads)
        for name, param in self.params.items():
            if not self.is_frozen(name):
                self._update(name, param, grads[name], lr * self.lr_scale.get(name, 1.0))

    def _check_grads(self, grads: Params) -> None:
        missing = sorted(self.params.keys() - grads.keys())
        if missing:
            raise ValueError(f"grads: missing gradient for {missing}")
        unexpected = sorted(grads.keys() - self.params.keys())
        if unexpected:
            raise ValueError(f"grads: gradient for unknown parameters {unexpected}")
        for name, param in self.params.items():
            if np.shape(grads[name]) != param.shape:
                raise ValueError(
                    f"grads[{name!r}] has shape {np.shape(grads[name])}, "
                    f"the parameter has shape {param.shape}"
                )

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray]:
        """The optimizer state as a flat dict of NumPy arrays, ready for `safetensors.numpy`.

        Keys are `<slot>.<parameter name>` (`exp_avg.bert.pooler.dense.weight`); buffers are copies
        shaped like their parameter, counts are 0-d int64 arrays. Hyperparameters (lr, betas, ...)
        are not included: rebuild the optimizer with the same arguments, then load.
        """
        return {
            f"{slot}.{name}": np.array(value, dtype=np.int64 if slot in self.count_slots else None)
            for slot, values in self.state.items()
            for name, value in values.items()
        }

    @classmethod
    def check_state(cls, state: Mapping[str, np.ndarray], shapes: Mapping[str, tuple],
                    argument: str = "state") -> None:
        """`state` is what `state_dict` returns for parameters of `shapes` (name -> shape), else
        a ValueError naming `argument` and the first entry that is not: each key `<slot>.<name>`
        of this class's slots and a parameter; a buffer floating, finite and of its parameter's
        shape (>= 0 in `non_negative_slots`); a count one int >= 0 (0-d); and every slot covering
        the same parameters (one not updated yet, or frozen, has none). The NumPy and the torch
        training steps and a checkpoint read for --resume all check their state with it."""
        covered: dict[str, set[str]] = {slot: set() for slot in cls.buffer_slots + cls.count_slots}
        for key, value in state.items():
            slot, _, name = key.partition(".")
            if slot not in covered or name not in shapes:
                raise ValueError(f"{argument}: unexpected entry {key!r}")
            value, entry = np.asarray(value), f"{argument}[{key!r}]"
            if slot in cls.count_slots:
                if value.shape != ():
                    raise ValueError(f"{entry} must be one int >= 0 (a step count), got an array "
                                     f"of shape {value.shape}")
                int_at_least(entry, value.item(), 0)
            else:
                if value.shape != tuple(shapes[name]):
                    raise ValueError(f"{entry} has shape {value.shape}, the parameter has "
                                     f"{tuple(shapes[name])}")
                check_floating(entry, value)
                check_finite(entry, value)
                if slot in cls.non_negative_slots and (value < 0).any():
                    raise ValueError(f"{entry} must be >= 0 (a mean of squares), got "
                                     f"{value.min()}")
            covered[slot].add(name)
        every = set().union(*covered.values())
        for slot, names in covered.items():
            if names != every:
                raise ValueError(f"{argument}: slots {list(covered)} must cover the same "
                                 f"parameters; {slot}.{min(every - names)} is missing")

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the optimizer state by (copies of) the entries of `state_dict()`'s output,
        checked first (`check_state`)."""
        self.check_state(state, {name: param.shape for name, param in self.params.items()})
        loaded: dict[str, dict[str, np.ndarray | int]] = {slot: {} for slot in self.state}
        for key, value in state.items():
            slot, _, name = key.partition(".")
            loaded[slot][name] = (int(value) if slot in self.count_slots
                                  else np.array(value, dtype=self.params[name].dtype))
        self.state = loaded


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as `torch.optim.SGD` (dampening 0).

    For a parameter p with gradient g and learning rate lr (after `lr_scale`):

        g ← g + weight_decay · p            L2 penalty ½·wd·|p|² folded into the gradient
        b ← g                               first step: the momentum buffer starts at g, not at 0
        b ← momentum · b + g                every later step
        d ← g + momentum · b   (nesterov)   or   d ← b   (classical momentum)
        p ← p − lr · d

    With momentum = 0 there is no buffer: p ← p − lr · (g + weight_decay · p). Weight decay here
    applies to every parameter, as in PyTorch; for decoupled decay with exclusions use AdamW.
    """

    buffer_slots = ("momentum_buffer",)

    def __init__(
        self,
        params: Params,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        lr_scale: Mapping[str, float] | None = None,
        frozen: FrozenNames = None,
    ):
        super().__init__(params, lr, lr_scale, frozen)
        self.momentum = number_in("momentum", momentum, "[0, inf)")
        self.weight_decay = number_in("weight_decay", weight_decay, "[0, inf)")
        check_flag("nesterov", nesterov)
        if nesterov and momentum == 0:
            raise ValueError("nesterov=True requires momentum > 0")
        self.nesterov = nesterov

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        if self.weight_decay != 0:
            # A new array, not `grad += ...`: the model's gradients must stay as they are.
            grad = grad + self.weight_decay * param
        direction = grad
        if self.momentum != 0:
            buffers = self.state["momentum_buffer"]
            if name not in buffers:
                buffers[name] = np.array(grad, dtype=param.dtype)  # a copy of the first gradient
            else:
                buffers[name] *= self.momentum
                buffers[name] += grad
            buffer = buffers[name]
            direction = grad + self.momentum * buffer if self.nesterov else buffer
        param -= lr * direction


def default_decay_rule(params: Params) -> Callable[[str], bool]:
    """AdamW's default: decay exactly the parameters with ndim >= 2 that are not a bias.

    That is the weight matrices of every linear layer *and the embedding tables* (word, position,
    token type), as in Hugging Face's fine-tuning recipes; it excludes every bias and every
    LayerNorm weight and bias (1-D), whichever naming scheme the checkpoint uses (`LayerNorm.weight`
    in BERT, `ln_1.weight` in GPT-2). Decaying a bias or a LayerNorm gain towards 0 would pull the
    model towards a different function (a gain of 0 switches a feature off), not a simpler one.
    One bias is stored as a matrix: the encoder-decoder's output bias `final_logits_bias`, a (1, V)
    row as in Marian and BART; the name excludes it. Both training steps use this rule
    (`minilm.steps`), on NumPy arrays or torch tensors.
    """
    return lambda name: params[name].ndim >= 2 and not name.endswith("bias")


def check_betas(betas) -> tuple[float, float]:
    """Adam's (β₁, β₂), each a finite number in [0, 1): β = 1 would never forget the first
    gradient, and its bias correction 1/(1 − βᵗ) would divide by 0."""
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = (number_in(f"betas[{index}]", beta, "[0, 1)") for index, beta in enumerate(betas))
    return beta1, beta2


class AdamW(Optimizer):
    """Adam with decoupled weight decay, exactly as `torch.optim.AdamW`.

    At step t of a parameter p (t counts that parameter's own updates) with gradient g:

        p ← p − lr · wd · p                     decoupled decay (parameters chosen by `decay`)
        m ← β₁ · m + (1 − β₁) · g               running mean of g            (m starts at 0)
        v ← β₂ · v + (1 − β₂) · g²              running mean of g², per element  (v starts at 0)
        m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)   bias correction: undo the pull towards 0 at start
        p ← p − lr · m̂ / (√v̂ + ε)

    *Decoupled* means the decay shrinks p directly instead of adding wd·p to g (L2 regularisation,
    what `SGD(weight_decay=...)` and `torch.optim.Adam(weight_decay=...)` do). With L2, the
    penalty's gradient would pass through the 1/√v̂ normalisation, so parameters with large
    gradients would be barely regularised; decoupled, every decayed weight shrinks by the same
    factor (1 − lr·wd).

    `decay` chooses the parameters that are decayed: a callable `name -> bool`, by default
    `default_decay_rule` (ndim >= 2: weight matrices and embeddings, not biases or LayerNorm).
    The chosen names are in `self.decayed_names`. Each parameter's update is `adamw_update`
    (weight_decay 0 for the others).
    """

    buffer_slots = ("exp_avg", "exp_avg_sq")
    non_negative_slots = ("exp_avg_sq",)  # v, a running mean of g²: its √ must exist
    count_slots = ("step",)

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        decay: Callable[[str], bool] | None = None,
        lr_scale: Mapping[str, float] | None = None,
        frozen: FrozenNames = None,
    ):
        super().__init__(params, lr, lr_scale, frozen)
        for name, param in params.items():
            if param.dtype == np.float16:  # torch's AdamW does the same: mixed precision exists
                raise ValueError(
                    f"params[{name!r}] is float16: AdamW needs float32 or float64 parameters (in "
                    "float16 the second moment (1 - beta2) g^2 underflows to 0 for |g| < 0.005 "
                    "and eps rounds to 0, so the update m / sqrt(v) divides by 0)")
        self.beta1, self.beta2 = check_betas(betas)
        self.eps = number_in("eps", eps, "(0, inf)")  # 0: a gradient entry 0 at step 1 is 0 / 0
        self.weight_decay = number_in("weight_decay", weight_decay, "[0, inf)")
        if decay is not None and not callable(decay):
            raise ValueError("decay must be a callable name -> bool, or None for the default rule")
        is_decayed = default_decay_rule(params) if decay is None else decay
        self.decayed_names = frozenset(name for name in params if is_decayed(name))

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        if name not in self.state["step"]:
            self.state["step"][name] = 0
            self.state["exp_avg"][name] = np.zeros_like(param)
            self.state["exp_avg_sq"][name] = np.zeros_like(param)
        self.state["step"][name] += 1
        weight_decay = self.weight_decay if name in self.decayed_names else 0.0
        new_param, exp_avg, exp_avg_sq = adamw_update(
            param, grad, self.state["exp_avg"][name], self.state["exp_avg_sq"][name],
            self.state["step"][name], lr, (self.beta1, self.beta2), self.eps, weight_decay)
        param[...] = new_param  # in place: the model holds this array
        # the moments are the optimizer's own: the new arrays replace them (in the parameter's dtype)
        self.state["exp_avg"][name] = exp_avg.astype(param.dtype, copy=False)
        self.state["exp_avg_sq"][name] = exp_avg_sq.astype(param.dtype, copy=False)


def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0):
    """One AdamW update of one tensor -> (param, exp_avg, exp_avg_sq), new arrays (the inputs are
    not modified). `step` counts this tensor's updates, this one included (1 on the first).

        p ← p · (1 − lr · wd)                   decoupled decay: shrink p, whatever g says
        m ← β₁ m + (1 − β₁) g,   v ← β₂ v + (1 − β₂) g²
        p ← p − lr · m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)

    The arithmetic is grouped as in `torch.optim.AdamW` (√v / √(1 − β₂ᵗ) + ε, and lr / (1 − β₁ᵗ)
    applied to m), so the two agree to an ulp or two (torch forms m with `lerp`), not just
    approximately.
    """
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad  # m
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad  # v
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    denom = np.sqrt(exp_avg_sq) / math.sqrt(bias_correction2) + eps
    return param - lr / bias_correction1 * (exp_avg / denom), exp_avg, exp_avg_sq


def clip_grad_norm(grads: Params, max_norm: float) -> float:
    """Scale all gradients together so that their global L2 norm is at most `max_norm`.

        total_norm = √(Σ over all gradients of Σ g²)
        clip_coef  = max_norm / (total_norm + 1e-6);   if clip_coef < 1:  g ← clip_coef · g

    The same as `torch.nn.utils.clip_grad_norm_` (its 1e-6 keeps the division finite and leaves
    the clipped norm just below max_norm). Scales in place; returns the norm *before* clipping,
    the number worth logging. float16 gradients are summed in float32, as torch does: their sum
    of squares would overflow once the norm passed 256, and clip_coef = max_norm / inf would
    zero every gradient.
    """
    number_in("max_norm", max_norm, "(0, inf)")
    norms = [np.linalg.norm(np.ravel(grad).astype(np.promote_types(grad.dtype, np.float32),
                                                  copy=False)) for grad in grads.values()]
    total_norm = float(np.linalg.norm(norms)) if norms else 0.0
    clip_coef = max_norm / (total_norm + 1e-6)
    if clip_coef < 1:
        for grad in grads.values():
            grad *= clip_coef
    return total_norm


DECAY_KINDS = ("cosine", "linear", "constant")


def lr_schedule(
    step: int,
    base_lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    decay: str = "cosine",
    min_lr: float = 0.0,
) -> float:
    """The learning rate for `step` (0-based): linear warmup, then decay to `min_lr`.

        warmup, s < W:        lr = base_lr · (s + 1) / W
        decay,  W ≤ s < T:    progress = (s − W) / (T − W)             (0 at s = W, → 1 at s = T)
            cosine:           lr = min_lr + (base_lr − min_lr) · ½ · (1 + cos(π · progress))
            linear:           lr = min_lr + (base_lr − min_lr) · (1 − progress)
            constant:         lr = base_lr
        after,  s ≥ T:        lr = min_lr  (base_lr for "constant")

    The warmup uses (s + 1)/W rather than s/W so that the very first update is not wasted with
    lr = 0; it reaches base_lr at s = W − 1, and the decay starts from base_lr at s = W. Steps are
    ints (`int_at_least`: 0 <= s, 0 <= W <= T, 1 <= T), the rates finite, 0 <= min_lr <= base_lr.
    """
    if decay not in DECAY_KINDS:
        raise ValueError(f"decay must be one of {DECAY_KINDS}, got {decay!r}")
    int_at_least("step", step, 0)
    int_at_least("total_steps", total_steps, 1)
    if int_at_least("warmup_steps", warmup_steps, 0) > total_steps:
        raise ValueError(
            f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}"
        )
    base_lr = number_in("base_lr", base_lr, "[0, inf)")
    number_in("min_lr", min_lr, f"[0, {base_lr}]")

    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if decay == "constant":
        return base_lr
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    if decay == "cosine":
        return min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    return min_lr + (base_lr - min_lr) * (1 - progress)

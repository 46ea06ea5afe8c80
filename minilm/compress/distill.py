"""Knowledge distillation (Hinton et al. 2015; DistilBERT, Sanh et al. 2019): train a small
*student* to reproduce a large *teacher*'s outputs, not only the labels.

A label says "positive"; the teacher's probabilities say "positive, 0.93, and a little negative":
how sure it is, and on a task with more classes which wrong answers are nearly right. That extra
information — Hinton's "dark knowledge" — is in the teacher's logits t, read at a temperature T > 1
that flattens them (softmax(t / T) lifts the small probabilities, where the information is):

    p = softmax(t / T)   (teacher)        q = softmax(s / T)   (student, s its logits)
    L = alpha T^2 KL(p || q) + (1 - alpha) CE(s, y)
    KL(p || q) = sum_k p_k (log p_k - log q_k), averaged over the N examples
    CE = the ordinary cross-entropy with the hard labels y (averaged over the labelled examples;
         -100 marks an example with no label, which the teacher still teaches)

The backward, by hand: d KL / d s = (q - p) / (T N) (softmax's and the log's Jacobians fold into
the same q - p as cross-entropy's), so the distillation term gives alpha T (q - p) / N. Without the
T^2 the gradient would shrink as 1/T^2: one 1/T is explicit, and q - p itself is O(1/T) when T is
large (both softmaxes flatten toward uniform); the T^2 keeps the soft term's gradient on the hard
term's scale whatever T (Hinton et al., section 2). `distillation_loss_forward/backward` (NumPy, checked by finite
differences and torch autograd in tests/test_compress.py) and `distillation_loss` (the twin).

The student is the teacher with fewer blocks, initialised from the teacher's (DistilBERT takes
every other layer): `student_from_teacher(teacher, layers=(0, 2, 4))` keeps embeddings, blocks 0,
2 and 4 (renumbered 0, 1, 2), pooler and classifier. `distill(student, teacher, tokenizer, task,
settings)` trains it with the loss above, through the one training step of `minilm.steps` with this
loss in place of cross-entropy; alpha = 0 trains the same student on the hard labels alone (the
comparison that says what the teacher added).
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import log_softmax

from minilm.classification import predict_logits, scores_on_test_split
from minilm.common.backends import is_torch_model, numpy_params
from minilm.common.checks import number_in
from minilm.common.names import IGNORE_INDEX
from minilm.compress.quantize import check_not_quantized
from minilm.compress.rebuild import rebuilt
from minilm.finetune import check_recipe, epoch_batch, fitted_max_length
from minilm.numpy import functional as F
from minilm.numpy.optim import lr_schedule
from minilm.steps import NumpyStep, TorchStep, check_finite_loss

BLOCK = re.compile(r"^(bert\.encoder\.layer\.|transformer\.h\.)(\d+)\.(.*)$")


# ---------------------------------------------------------------- the loss, by hand


class DistillationCache(NamedTuple):
    student_probs: np.ndarray  # q = softmax(s / T) (N, L)
    teacher_probs: np.ndarray  # p = softmax(t / T) (N, L)
    cross_entropy: F.CrossEntropyCache  # of the hard-label term
    temperature: float
    alpha: float


# The soft term is computed in float64 whatever the logits' dtype: KL(p || q) is O(1/T^2) and comes
# out of a difference of log-probabilities of size ~log L, so their rounding (float32: ~1e-7) times
# T^2 would swamp it (at T = 1e3 the float32 loss was 0.3% off; at 1e5, negative). In float64 the
# error is ~1e-16 T^2; MAX_TEMPERATURE keeps it below 1e-8.
MAX_TEMPERATURE = 1e4


def check_temperature_and_alpha(temperature, alpha) -> None:
    """temperature in (0, MAX_TEMPERATURE], alpha in [0, 1] (ValueError naming the one that is
    not): the loss's rule, and `DistillSettings`'."""
    number_in("temperature", temperature, f"(0, {MAX_TEMPERATURE:g}]")
    number_in("alpha", alpha, "[0, 1]")


def _check_loss_arguments(student_logits, teacher_logits, temperature, alpha) -> None:
    if np.shape(student_logits) != np.shape(teacher_logits) or np.ndim(student_logits) != 2:
        raise ValueError(f"student_logits {np.shape(student_logits)} and teacher_logits "
                         f"{np.shape(teacher_logits)} must both be (N, num_labels)")
    check_temperature_and_alpha(temperature, alpha)


def distillation_loss_forward(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5):
    """L = alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, labels): (loss, cache).

    student_logits, teacher_logits (N, L); labels (N,) class ids, -100 for an unlabelled example.
    """
    _check_loss_arguments(student_logits, teacher_logits, temperature, alpha)
    log_q = log_softmax(np.asarray(student_logits, np.float64) / temperature, axis=-1)  # (N, L)
    log_p = log_softmax(np.asarray(teacher_logits, np.float64) / temperature, axis=-1)  # (N, L)
    p = np.exp(log_p)
    kl = float(np.sum(p * (log_p - log_q))) / len(p)  # mean over the examples
    ce, ce_cache = F.cross_entropy_forward(student_logits, labels, IGNORE_INDEX)
    loss = alpha * temperature**2 * kl + (1 - alpha) * float(ce)
    return loss, DistillationCache(np.exp(log_q), p, ce_cache, temperature, alpha)


def distillation_loss_backward(cache: DistillationCache, dloss=1.0):
    """d L / d student_logits (N, L) = alpha T (q - p) / N + (1 - alpha) d CE / d s."""
    q, p, ce_cache, temperature, alpha = cache
    dsoft = (q - p) * (alpha * temperature / len(q))  # (N, L), float64
    dhard = F.cross_entropy_backward(ce_cache, dloss=1 - alpha)  # (N, L), the logits' dtype
    return (dsoft.astype(dhard.dtype) + dhard) * dloss


def distillation_loss(student_logits, teacher_logits, labels, temperature=2.0, alpha=0.5):
    """The PyTorch twin of `distillation_loss_forward` (tensors in, a scalar tensor out);
    autograd differentiates it. KL as DistilBERT computes it: kl_div(..., "batchmean") * T^2."""
    import torch

    from minilm.torch import functional as TF

    _check_loss_arguments(student_logits, teacher_logits, temperature, alpha)
    log_q = torch.log_softmax(student_logits.double() / temperature, dim=-1)  # (N, L), float64
    log_p = torch.log_softmax(teacher_logits.double() / temperature, dim=-1)  # (N, L)
    kl = torch.nn.functional.kl_div(log_q, log_p, reduction="batchmean", log_target=True)
    ce = TF.cross_entropy(student_logits, labels, IGNORE_INDEX)
    return (alpha * temperature**2 * kl).to(ce.dtype) + (1 - alpha) * ce


# ---------------------------------------------------------------- the training step


class NumpyDistillationStep(NumpyStep):
    """`minilm.steps.NumpyStep` with the distillation loss; targets are (labels, teacher_logits)."""

    def __init__(self, model, temperature, alpha, **step_options):
        super().__init__(model, **step_options)
        self.temperature, self.alpha = temperature, alpha

    def loss_and_backward(self, logits, targets) -> float:
        labels, teacher_logits = targets
        loss, cache = distillation_loss_forward(logits, teacher_logits, labels, self.temperature,
                                                self.alpha)
        self.model.backward(distillation_loss_backward(cache))
        return loss


class TorchDistillationStep(TorchStep):
    """`minilm.steps.TorchStep` with the distillation loss; targets are (labels, teacher_logits)."""

    def __init__(self, model, temperature, alpha, **step_options):
        super().__init__(model, **step_options)
        self.temperature, self.alpha = temperature, alpha

    def loss(self, logits, targets):
        labels, teacher_logits = (self.torch.as_tensor(t, device=logits.device) for t in targets)
        return distillation_loss(logits, teacher_logits.to(logits.dtype), labels,
                                 self.temperature, self.alpha)


def make_distillation_step(model, temperature, alpha, weight_decay, grad_clip=1.0):
    """The distillation step for `model`'s backend (as `minilm.steps.make_step`); call it with
    targets = (labels, teacher_logits)."""
    step_class = TorchDistillationStep if is_torch_model(model) else NumpyDistillationStep
    return step_class(model, temperature, alpha, weight_decay=weight_decay, grad_clip=grad_clip)


# ---------------------------------------------------------------- student and loop


def student_from_teacher(teacher, layers=(0, 2, 4)):
    """The teacher (either twin, BERT or GPT-2, with its heads) with only the blocks `layers`
    (increasing), renumbered 0, 1, ...; every other weight copied as it is."""
    check_not_quantized(teacher, "take a student from it")
    config = teacher.config
    layers = [int(layer) for layer in layers]
    if not layers or layers != sorted(set(layers)) or not 0 <= layers[0] <= layers[-1] < config.n_layers:
        raise ValueError(f"layers must be increasing block numbers in [0, {config.n_layers}), "
                         f"got {layers}")
    params = {}
    for name, value in numpy_params(teacher).items():
        block = BLOCK.match(name)
        if block is None:
            params[name] = value.copy()
        elif int(block[2]) in layers:
            params[f"{block[1]}{layers.index(int(block[2]))}.{block[3]}"] = value.copy()
    pruned = {layers.index(layer): heads for layer, heads in config.pruned_heads.items()
              if layer in layers}
    student_config = dataclasses.replace(config, n_layers=len(layers), pruned_heads=pruned)
    return rebuilt(teacher, student_config, params)


@dataclass
class DistillSettings:
    """How a student is distilled (the fine-tuning recipe of `minilm.finetune`, plus the loss's
    temperature and alpha; alpha = 0 is plain fine-tuning on the hard labels). Checked when made:
    the recipe's fields as FinetuneSettings checks them (`check_recipe`), temperature and alpha as
    the loss does."""

    temperature: float = 2.0
    alpha: float = 0.5
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_length: int | None = 64  # None: as fine-tuning, 64 or the student's max_len if smaller
    # the order of the examples, and a twin student's dropout masks (torch's generator); a NumPy
    # student draws its masks from its own generator (the seeding rule of common/backends)
    seed: int = 0

    def __post_init__(self):
        check_recipe(self)  # epochs, batch_size, lr, warmup_ratio, weight_decay, ...
        check_temperature_and_alpha(self.temperature, self.alpha)


def distill(student, teacher, tokenizer, task, settings: DistillSettings | None = None,
            progress: bool = False) -> dict:
    """Train `student` (in place, either twin) on `task`'s training split with the distillation
    loss against `teacher`'s logits (computed once, in eval mode; unused, and `teacher` may be None,
    when alpha = 0); evaluate on the test split. Returns the metrics."""
    settings = DistillSettings() if settings is None else settings
    if settings.alpha > 0 and teacher is None:
        raise ValueError("alpha > 0 distils from a teacher: give one (or alpha=0 for hard labels)")
    settings = dataclasses.replace(settings, max_length=fitted_max_length(
        settings.max_length, student.config.max_len, "the student"))  # as fine-tuning fits it
    texts, labels = task.train_texts, task.train_labels
    teacher_logits = (np.zeros((len(texts), task.num_labels)) if settings.alpha == 0 else
                      predict_logits(teacher, tokenizer, texts, settings.max_length))  # (N, L)
    if is_torch_model(student):
        import torch

        torch.manual_seed(settings.seed)  # the dropout masks (the seeding rule of common/backends)
    step = make_distillation_step(student, settings.temperature, settings.alpha,
                                  settings.weight_decay, settings.grad_clip)
    rng = np.random.default_rng(settings.seed)
    per_epoch = -(-len(texts) // settings.batch_size)
    total = settings.epochs * per_epoch
    warmup = int(np.ceil(settings.warmup_ratio * total))
    losses, started = [], time.perf_counter()
    for epoch in range(settings.epochs):
        order = rng.permutation(len(texts))
        for b in range(per_epoch):
            index, inputs = epoch_batch(task, tokenizer, settings, order, b)
            lr = lr_schedule(len(losses), settings.lr, total, warmup, "linear")
            loss = step(inputs, (labels[index], teacher_logits[index]), lr)
            losses.append(check_finite_loss(loss, len(losses) + 1))
        if progress:
            print(f"epoch {epoch + 1}: mean loss {np.mean(losses[-per_epoch:]):.4f}")
    seconds = time.perf_counter() - started
    test = scores_on_test_split(student, tokenizer, task, settings.max_length)
    return {"eval_accuracy": test["accuracy"], "eval_loss": test["loss"], "loss_curve": losses,
            "steps": total, "train_seconds": seconds, "settings": dataclasses.asdict(settings)}

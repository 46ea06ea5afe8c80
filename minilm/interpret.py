"""Looking inside a trained BERT (seed §7, interpretability): what its heads attend to, which heads
a task needs, and which words decided a prediction.

Attention maps. Each head of each block computes a (T, T) matrix of attention weights: row i says
how much of every token j the head mixes into position i (rows sum to 1). `attention_maps` runs the
NumPy reference on one sentence (or a pair) and returns all of them, (L, H, T, T);
`plot_attention_maps` draws the grid (`minilm attention "text" --out maps.png`). The twin's fused
attention never materialises these weights, so a torch model is read through its NumPy copy.

Attention rollout (Abnar & Zuidema 2020). One head's map says what a block mixes, not where the
information of a position came from after several blocks. Rollout follows it down: average the
heads, add the residual connection (a block's output keeps its input), and multiply the layers:

    Ahat_l = (A_l + I) / 2      (A_l: layer l's map averaged over its heads; rows still sum to 1)
    R_1 = Ahat_1,   R_l = Ahat_l R_(l-1)       R_l[i, j]: the share of token j in position i

Head importance (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"). Put a gate
g_h = 1 on every head's output (`set_head_gates`; `F.head_gate_forward`): the model is unchanged,
but dL/dg_h says how the loss would move if the head were scaled down. A head's importance is the
mean over examples of |dL(x)/dg_h|: a first-order estimate of what masking it (g_h = 0) costs.
The NumPy backward computes the gate's gradient by hand (`F.head_gate_backward`); the twin's comes
from autograd. Michel et al. then normalise each layer's scores to unit L2 norm before ranking the
heads across layers (`normalize=True`); `minilm.compress.prune` removes the least important.

Saliency, gradient x input (Simonyan et al. 2014; Shrikumar et al. 2017). For a classified sentence,
score_t = (d logit_c / d e_t) . e_t, with e_t the word embedding of token t and c the class: how
much the class's logit would move, to first order, if token t's embedding were taken away.
Positive: the token pushed towards c; negative: against it.
"""

from __future__ import annotations

import numpy as np

from minilm.common.backends import (
    check_model_class,
    eval_mode,
    inference,
    is_torch_model,
    numpy_params,
    to_numpy,
)
from minilm.common.checks import check_finite, check_flag, int_at_least, number_in, positive_int
from minilm.compress.quantize import check_not_quantized
from minilm.compress.rebuild import rebuilt
from minilm.numpy import functional as F
from minilm.tokenizers.char import CharTokenizer

# ---------------------------------------------------------------- attention maps and rollout


def _numpy_reference(model):
    """The model itself, or for a torch model its NumPy copy (same class, weights, mode)."""
    if not is_torch_model(model):
        return model
    check_not_quantized(model, "copy a torch model into NumPy", "draw the maps of the float "
                        "twin, or of a quantized NumPy model")
    return rebuilt(model, model.config, numpy_params(model), backend="numpy")


def _encoder(model):
    """The BERT encoder of a model: a task head's, or the model itself."""
    encoder = getattr(model, "encoder", model)
    if not hasattr(encoder, "encode"):
        raise ValueError(f"{type(model).__name__} is not a BERT encoder or a head on one")
    return encoder


def _whole_text(tokenizer, encoder, text: str, pair: str | None,
                max_length: int | None) -> tuple[list[str], dict]:
    """(tokens, batch) of one text (or pair), all of it: a text longer than `max_length` tokens
    (default: the model's max_len) is refused, not cut to a part the caller never sees.

    A WordPiece tokenizer gives "[CLS] text [SEP] (pair [SEP])"; the CharTokenizer of a
    `minilm train --objective mlm` run gives the text's characters, one token each, with no
    [CLS] or [SEP] and no pair (its model was trained on plain character streams)."""
    given = {"text": text} if pair is None else {"text": text, "pair": pair}
    for name, value in given.items():  # a list would be a batch, of which one row was kept
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a str (one text), got {type(value).__name__} "
                             f"{value!r:.60}")
    limit = encoder.config.max_len if max_length is None else max_length
    if isinstance(tokenizer, CharTokenizer):
        if pair is not None:
            raise ValueError("pair: this model's tokenizer is a CharTokenizer, which reads one "
                             "text (no [SEP] to join a pair); give the text alone")
        if not text:
            raise ValueError(f"text must be a non-empty str, got {text!r}")
        ids = tokenizer.encode(text)[None]  # (1, T)
        batch = {"input_ids": ids, "attention_mask": np.ones_like(ids),
                 "token_type_ids": np.zeros_like(ids)}
        tokens, counted = [tokenizer.itos[i] for i in ids[0]], "characters"
    else:
        batch = tokenizer(text, pair)
        tokens = list(tokenizer.convert_ids_to_tokens(batch["input_ids"][0]))
        counted = "tokens with [CLS] and [SEP]"
    length = batch["input_ids"].shape[1]
    if length > limit:
        raise ValueError(f"the text{' and its pair' if pair is not None else ''}: {length} "
                         f"{counted}, more than the {limit} the model reads "
                         "(max_length, by default the model's max_len); give a shorter text")
    return tokens, batch


def attention_maps(model, tokenizer, text: str, pair: str | None = None,
                   max_length: int | None = None):
    """(tokens, maps): the WordPiece tokens of "[CLS] text [SEP] (pair [SEP])" (a CharTokenizer's:
    the characters of the text; no pair) and every head's attention weights maps[layer, head,
    query, key], (L, H, T, T), in eval mode. A pruned head's map is all zeros, at its original
    index. A text of more than `max_length` tokens (default: the model's max_len) is an error."""
    encoder = _encoder(_numpy_reference(model))
    tokens, batch = _whole_text(tokenizer, encoder, text, pair, max_length)
    with inference(encoder):
        encoder.encode(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    config, time = encoder.config, batch["input_ids"].shape[1]
    maps = np.zeros((config.n_layers, config.n_heads, time, time))
    for layer, block in enumerate(encoder.blocks):
        maps[layer, config.live_heads(layer)] = block.attn.cache.probs[0]  # (H_l, T, T): what the softmax gave
    return tokens, maps


def attention_rollout(maps, residual: float = 0.5):
    """Rollout R (L, T, T) of maps (L, H, T, T): R[l] = Ahat_l ... Ahat_1, with Ahat_l =
    residual * I + (1 - residual) * (layer l's map averaged over its heads; pruned ones, all
    zero, left out).

    maps: `attention_maps`' array, or a non-empty list of (H, T, T) arrays of one shape, finite,
    each layer with a head that is not all zero; residual a number in [0, 1] (outside it, Ahat
    would hold negative "attention")."""
    is_list = isinstance(maps, (list, tuple, np.ndarray))
    shapes = sorted({np.shape(layer) for layer in maps}) if is_list else []  # one, if well formed
    if len(shapes) != 1 or len(shapes[0]) != 3 or not shapes[0][1] == shapes[0][2] > 0:
        raise ValueError(f"maps must be a non-empty list of (H, T, T) arrays of one shape, one "
                         f"per layer, got {shapes if is_list else type(maps).__name__}")
    number_in("residual", residual, "[0, 1]")
    maps = np.asarray(maps, dtype=np.float64)  # (L, H, T, T)
    check_finite("maps", maps)
    time = maps.shape[-1]
    live = maps.sum(axis=(-1, -2)) > 0  # (L, H): the heads that exist
    if not live.any(axis=1).all():
        raise ValueError(f"maps: layer {int(np.argmin(live.any(axis=1)))} has no head with a "
                         "nonzero map (a layer of pruned heads only has nothing to average)")
    rollout, product = [], np.eye(time)
    for layer_maps, heads in zip(maps, live):
        mixed = layer_maps[heads].mean(axis=0)  # (T, T): the heads' average
        step = residual * np.eye(time) + (1 - residual) * mixed
        product = step @ product  # (T, T): from the input tokens to this layer's outputs
        rollout.append(product)
    return np.stack(rollout)  # (L, T, T)


def plot_attention_maps(tokens, maps, rollout=None, title: str | None = None):
    """A grid of heatmaps, one row per layer and one column per head (and, with `rollout`, a last
    column with the rollout up to that layer): query tokens down, key tokens across. Returns a
    matplotlib Figure (`fig.savefig(path)`; a notebook displays it)."""
    from matplotlib.figure import Figure

    n_layers, n_heads = maps.shape[:2]
    columns = n_heads + (rollout is not None)
    cell = 1.0 if len(tokens) <= 16 else 1.5
    fig = Figure(figsize=(cell * columns + 1.2, cell * n_layers + 1.2), layout="constrained")
    axes = fig.subplots(n_layers, columns, squeeze=False)
    positions = np.arange(len(tokens))
    for layer in range(n_layers):
        for column in range(columns):
            ax = axes[layer, column]
            is_rollout = column == n_heads
            image = rollout[layer] if is_rollout else maps[layer, column]
            ax.imshow(image, vmin=0, vmax=1, cmap="magma" if is_rollout else "viridis",
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if layer == 0:
                ax.set_title("rollout" if is_rollout else f"head {column}", fontsize=8)
            if column == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
            if not is_rollout and not image.any():
                ax.text(0.5, 0.5, "pruned", transform=ax.transAxes, ha="center", va="center",
                        color="white", fontsize=7)
        axes[layer, 0].set_yticks(positions, tokens, fontsize=5)
    for ax in axes[-1]:
        ax.set_xticks(positions, tokens, rotation=90, fontsize=5)
    fig.suptitle(title or "attention weights (rows: queries, columns: keys)", fontsize=10)
    return fig


# ---------------------------------------------------------------- head gates and importance


def attention_layers(model) -> list:
    """The MultiHeadAttention layer of every block, in order (either twin, any model)."""
    return [block.attn for block in getattr(model, "encoder", model).blocks]


def set_head_gates(model, gates) -> None:
    """Put a multiplier on every head's output, in place: `gates` holds one entry per block, an
    array (H_l,) shared by the batch or (B, H_l) one per example (H_l the block's heads; an
    (L, H) array does for an unpruned model) of finite numbers; None removes every gate. For the
    twin, tensors (a gate that requires grad gets a gradient) or arrays (converted to the model's
    dtype)."""
    layers = attention_layers(model)
    if gates is None:
        for layer in layers:
            layer.head_gate = None
        return
    if not hasattr(gates, "__len__"):
        raise ValueError(f"gates must hold one gate per block (a list, or an (L, H) array), got "
                         f"{type(gates).__name__} {gates!r}")
    if len(gates) != len(layers):
        raise ValueError(f"gates: {len(gates)} entries for a model of {len(layers)} blocks")
    weight = next(iter(_parameters(model)))
    for number, (layer, gate) in enumerate(zip(layers, gates)):
        if np.shape(gate)[-1:] != (layer.n_heads,) or len(np.shape(gate)) > 2:
            raise ValueError(f"gates[{number}] has shape {tuple(np.shape(gate))}; block "
                             f"{number} has {layer.n_heads} heads: expected ({layer.n_heads},) "
                             f"or (B, {layer.n_heads})")
        if is_torch_model(model):
            import torch

            gate = torch.as_tensor(gate).to(device=weight.device, dtype=weight.dtype)
        else:
            gate = np.asarray(gate, dtype=weight.dtype)
        check_finite(f"gates[{number}]", gate)  # NaN would make every output NaN
        layer.head_gate = gate


def _parameters(model):
    return model.parameters() if is_torch_model(model) else model.params.values()


def head_importance(model, tokenizer, texts, labels, batch_size: int = 32, max_length: int = 64,
                    normalize: bool = True):
    """Michel et al.'s importance of every head of a sequence classifier (either twin) on
    (texts, labels): I[l, h] = mean over the examples of |d CE(x) / d g_lh|, at g = 1, in eval
    mode; (L, H), NaN where a head was pruned. `normalize`: each layer divided by its L2 norm.

    texts: a non-empty list of str; labels: one class id per text; batch_size an int >= 1."""
    check_model_class(model, "SequenceClassifier", "head_importance")  # it reads a class's logit
    if not isinstance(texts, (list, tuple, np.ndarray)) or len(texts) == 0:
        raise ValueError(f"texts must be a non-empty list of texts, got {texts!r:.60}")
    labels = np.asarray(labels)
    if labels.shape != (len(texts),):
        raise ValueError(f"labels must hold one class id per text, shape ({len(texts)},), got "
                         f"shape {labels.shape}")
    batch_size = positive_int("batch_size", batch_size)
    check_flag("normalize", normalize)
    config = model.config
    importance = np.zeros((config.n_layers, config.n_heads))
    with eval_mode(model):
        try:
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(list(texts[start:start + batch_size]), padding=True,
                                  truncation=True, max_length=max_length)
                inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
                grads = _gate_gradients(model, inputs, labels[start:start + batch_size])
                for layer, grad in enumerate(grads):  # (B, H_l): one gradient per example
                    importance[layer, config.live_heads(layer)] += np.abs(grad).sum(axis=0)
        finally:
            set_head_gates(model, None)
    importance /= len(texts)
    for layer, pruned in config.pruned_heads.items():
        importance[layer, list(pruned)] = np.nan
    if normalize:
        importance /= np.sqrt(np.nansum(importance**2, axis=1, keepdims=True))
    return importance


def _gate_gradients(model, inputs, labels) -> list[np.ndarray]:
    """d CE(x) / d g for every example x of one batch, at gates of 1: a (B, H_l) array per block.

    The loss is the *sum* of the examples' cross-entropies (the mean times B), so that each
    example's row of the gate gradient is that example's own gradient."""
    batch = len(labels)
    shapes = [(batch, layer.n_heads) for layer in attention_layers(model)]
    if is_torch_model(model):
        import torch

        from minilm.torch import functional as TF

        weight = next(model.parameters())
        gates = [torch.ones(shape, dtype=weight.dtype, device=weight.device, requires_grad=True)
                 for shape in shapes]
        set_head_gates(model, gates)
        with torch.enable_grad():
            logits = model(*inputs)
            loss = TF.cross_entropy(logits, torch.as_tensor(labels, device=logits.device)) * batch
            return [to_numpy(grad) for grad in torch.autograd.grad(loss, gates)]
    set_head_gates(model, [np.ones(shape) for shape in shapes])
    _, cache = F.cross_entropy_forward(model.forward(*inputs), labels)
    model.backward(F.cross_entropy_backward(cache, dloss=batch))  # leaves head_gate_grad
    return [layer.head_gate_grad for layer in attention_layers(model)]


def plot_head_importance(importance, title: str | None = None):
    """Heatmap of importance (L, H), each cell written in; pruned heads blank."""
    from matplotlib.figure import Figure

    n_layers, n_heads = importance.shape
    fig = Figure(figsize=(0.6 * n_heads + 2, 0.5 * n_layers + 1.4), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(importance, cmap="Blues", vmin=0)
    for (layer, head), value in np.ndenumerate(importance):
        if np.isfinite(value):
            ax.text(head, layer, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if value > 0.6 * np.nanmax(importance) else "black")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title or "head importance (Michel et al. 2019)", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


# ---------------------------------------------------------------- saliency


def saliency(model, tokenizer, text: str, label: int | None = None,
             max_length: int | None = None):
    """(tokens, scores (T,), label): gradient x input of class `label`'s logit (default: the
    predicted class) for a sequence classifier of either twin, in eval mode; `label` None or an
    int in [0, num_labels). A text of more than `max_length` tokens (default: the model's max_len)
    is an error."""
    check_model_class(model, "SequenceClassifier", "saliency")  # it reads a class's logit
    if label is not None and int_at_least("label", label, 0) >= model.num_labels:
        raise ValueError(f"label must be an int in [0, {model.num_labels}) (a class id), got "
                         f"{label}")
    tokens, batch = _whole_text(tokenizer, model.encoder, text, None, max_length)
    inputs = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    with eval_mode(model):
        if is_torch_model(model):
            scores, label = _torch_saliency(model, inputs, label)
        else:
            scores, label = _numpy_saliency(model, inputs, label)
    return tokens, scores, label


def _numpy_saliency(model, inputs, label):
    """The classifier's backward from one logit, stopped at the embeddings: the gradient of the
    sum word + position + type embeddings, which is the word embedding's own gradient."""
    encoder = model.encoder
    logits = model.head_forward(encoder.encode(*inputs))  # (1, L)
    label = int(logits[0].argmax()) if label is None else label
    dlogits = np.zeros_like(logits)
    dlogits[0, label] = 1.0  # d logit_c / d logits
    dhidden = model.head_backward(dlogits)  # (1, T, C)
    for block in reversed(encoder.blocks):
        dhidden = block.backward(dhidden)
    dembedded = encoder.embedding_norm.backward(encoder.embedding_dropout.backward(dhidden))
    encoder.store.zero_grad()  # the parameter gradients the backward left are not wanted
    words = encoder.word.weight[inputs[0]]  # (1, T, C): e_t
    return (dembedded * words).sum(axis=-1)[0], label  # (T,)


def _torch_saliency(model, inputs, label):
    import torch

    kept = {}

    def keep_embeddings(module, args, output):  # the forward goes on from a leaf, (1, T, C),
        kept["words"] = output.detach().requires_grad_()  # whose gradient torch keeps, even
        return kept["words"]  # when no weight of the model needs one (a frozen model)

    hook = model.encoder.word.register_forward_hook(keep_embeddings)
    try:
        with torch.enable_grad():
            logits = model(*inputs)  # (1, L)
            label = int(logits[0].argmax()) if label is None else label
            logits[0, label].backward()
    finally:
        hook.remove()
        model.zero_grad(set_to_none=True)
    words = kept["words"]
    return to_numpy((words.grad * words).sum(dim=-1)[0]), label  # (T,)

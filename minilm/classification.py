"""Measuring a sentence classifier (either backend): its logits on texts, and on a task's test
split its loss, accuracy, macro-F1 and confusion matrix.

    logits = predict_logits(model, tokenizer, ["a fine film", "dreadful"], max_length=64)  # (2, L)
    scores = scores_on_test_split(model, tokenizer, task, max_length=64)  # loss, accuracy, ...

Accuracy alone can flatter: on a test split that is 90% one label, always answering that label
scores 0.9. Per label, precision = right / predicted as it, recall = right / truly it, and F1 =
2PR / (P + R), their harmonic mean, which is low unless both are high; macro-F1 averages F1 over the
labels with equal weight, so a label the classifier never gets right costs it 1/L whatever its
share of the data. The confusion matrix shows which labels it mixes up: row = the true label,
column = the predicted one, the diagonal the right answers.
"""

from __future__ import annotations

import numpy as np

from minilm.common.backends import inference, to_numpy
from minilm.numpy import functional as F
from minilm.tasks import Task

EVAL_BATCH_SIZE = 64


def classifier_inputs(tokenizer, texts, max_length: int) -> tuple:
    """A classifier's forward arguments for a batch of `texts`: (input_ids, attention_mask,
    token_type_ids), each (B, T), the texts cut to `max_length` tokens and padded to the longest."""
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length)
    return batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]


def predict_logits(model, tokenizer, texts, max_length: int = 64,
                   batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """Logits (N, L) of a classifier (either backend) for `texts`, in eval mode (no dropout)."""
    logits = []
    with inference(model):
        for start in range(0, len(texts), batch_size):
            inputs = classifier_inputs(tokenizer, texts[start:start + batch_size], max_length)
            logits.append(to_numpy(model.forward(*inputs)))  # (B, L)
    return np.concatenate(logits)


def classification_metrics(labels, predictions, label_names) -> dict:
    """Accuracy, macro-F1, per label precision / recall / F1 / support, and the confusion matrix
    (see the module docstring) of integer `predictions` against the true `labels`.

        confusion[i, j] = #examples of label i predicted as j       (L, L)
        precision_j = confusion[j, j] / column j's sum,   recall_j = confusion[j, j] / row j's sum
        F1_j = 2 precision_j recall_j / (precision_j + recall_j)   (0 where both are 0)

    A label with no example and no prediction has no F1 (0 / 0 everywhere): macro-F1 is the mean
    over the labels that occur among the true labels or the predictions, as scikit-learn's
    `f1_score(average="macro")` computes it.
    """
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    n = len(label_names)
    confusion = np.zeros((n, n), dtype=np.int64)  # (L, L)
    np.add.at(confusion, (labels, predictions), 1)
    right = np.diag(confusion).astype(np.float64)  # (L,)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)  # (L,) columns, rows
    precision = np.divide(right, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(right, actual, out=np.zeros(n), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros(n), where=both > 0)
    occurring = (predicted + actual) > 0
    return {
        "accuracy": float(right.sum() / len(labels)),
        "macro_f1": float(f1[occurring].mean()),
        "per_label": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(actual[i])}
                      for i, name in enumerate(label_names)},
        "confusion_matrix": confusion.tolist(),
    }


def scores_on_test_split(model, tokenizer, task: Task, max_length: int) -> dict:
    """The classifier on the test split, in eval mode: its mean cross-entropy ("loss") and
    `classification_metrics`."""
    logits = predict_logits(model, tokenizer, task.test_texts, max_length).astype(np.float64)
    loss, _ = F.cross_entropy_forward(logits, task.test_labels)
    return {"loss": float(loss), **classification_metrics(task.test_labels, logits.argmax(-1),
                                                          task.label_names)}


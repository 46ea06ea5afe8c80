"""Labelled text for fine-tuning: the built-in sentiment task, and loaders for your own files.

The built-in task
-----------------
`load_sentiment("train" | "test")` returns 600 short English sentences written for this project
(not taken from any public dataset), each labelled "negative" or "positive" (ids 0 and 1, in the
order of `LABELS`):

    split   sentences   negative   positive   topics
    train   400         200        200        films, restaurants, products, books, hotels
    test    200         100        100        video games, travel, services, music, apps

The split is built to *need* generalisation. The test sentences come from other domains and mostly
use other sentiment words than the training ones ("superb", "dreadful", "sluggish", "spotless" where
train says "great", "terrible", "slow", "clean"), so about 40% of the test words never occur in
train. A bag-of-words classifier fitted on train (tests/test_tasks.py fits one) scores ~97% on
train and close to chance on test: it only knows the words it was shown. A pretrained encoder such
as MiniLM already knows that "dreadful" is like "terrible", which is the point of pre-training that
the fine-tuning lessons measure. Both splits mix lengths (3 to 35 words) and include negation
("not bad at all"), contrast ("the plot was thin, but the acting saved it") and mixed opinions
resolved one way; a human finds every label unambiguous.

Your own data
-------------
`load_labelled_file(path)` reads a CSV file (a header with `text` and `label` columns; other
columns are ignored) or a JSON Lines file (.jsonl / .ndjson: one `{"text": ..., "label": ...}`
object per line). A `text_pair` column or key (a sentence pair) is refused: the tasks are of one
sentence. A label is a name: a string, or an integer that stands for its own name
(`1` and `"1"` are the same label), so files labelled 0/1 work as they are. Two spellings of one
integer ("1" and "01") are refused: the file would not say whether they are one label or two.
`load_task(train, test)` turns files (or the name "sentiment") into a `Task` with both splits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from minilm.common.checks import int_at_least, number_in
from minilm.data import read_text

LABELS = ("negative", "positive")  # label names of the built-in sentiment task; id = index
SPLITS = ("train", "test")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# Hugging Face's name for the second sentence of a pair. Ignored like other columns, it would
# have the model learn from each pair's first sentence alone, and nothing would say so.
PAIR_FIELD = "text_pair"
NO_PAIRS = ("sentence-pair classification is not supported by `minilm finetune`; expected one "
            "'text' per example")

# One example as read from a file: (line number, text, label name). The line number is kept so
# that a bad label can be reported where it is.
Row = tuple[int, str, str]


@dataclass(frozen=True)
class Task:
    """A text-classification task: a train and a test split sharing one tuple of label names.

    `train_labels[i]` is the id of `train_texts[i]`, an index into `label_names`; same for test.
    """

    name: str
    label_names: tuple[str, ...]
    train_texts: list[str]
    train_labels: np.ndarray  # (N_train,) int64
    test_texts: list[str]
    test_labels: np.ndarray  # (N_test,) int64

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def first_of_each_label(self, n_train: int, n_test: int) -> Task:
        """The task cut to the first `n_train` training and `n_test` test sentences of each label
        (a small task that still has every class: the benchmarks' --smoke runs)."""
        def first(labels, n):  # (<= n * num_labels,) indices, label by label
            return np.concatenate([np.flatnonzero(labels == label)[:n]
                                   for label in range(self.num_labels)])

        train, test = first(self.train_labels, n_train), first(self.test_labels, n_test)
        return Task(f"{self.name} (first of each label)", self.label_names,
                    [self.train_texts[i] for i in train], self.train_labels[train],
                    [self.test_texts[i] for i in test], self.test_labels[test])

    def check_learnable(self) -> None:
        """A task fine-tuning can learn: both splits non-empty, and at least two classes among the
        training labels (with one, every prediction is right and nothing is learnt)."""
        if len(self.train_texts) == 0 or len(self.test_texts) == 0:
            raise ValueError(f"task {self.name!r} has {len(self.train_texts)} training and "
                             f"{len(self.test_texts)} test examples; both splits need at least one")
        classes = np.unique(self.train_labels)
        if len(classes) < 2:
            raise ValueError(
                f"task {self.name!r} has a single class in its training split "
                f"({[self.label_names[i] for i in classes]}); classification needs examples of at "
                "least two labels"
            )

    def digest(self) -> str:
        """sha256 of the texts and labels: a resumed run checks it trains on the same."""
        content = [self.label_names, self.train_texts, self.train_labels.tolist(),
                   self.test_texts, self.test_labels.tolist()]
        return hashlib.sha256(json.dumps(content).encode("utf-8")).hexdigest()


def load_sentiment(split: str) -> tuple[list[str], np.ndarray]:
    """The built-in sentiment split ("train" or "test"): texts and int64 label ids into `LABELS`.

    The files ship inside the package (minilm/assets/), so this works from a source checkout and
    from an installed wheel alike.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    resource = resources.files("minilm") / "assets" / f"sentiment_{split}.jsonl"
    source = f"minilm/assets/sentiment_{split}.jsonl"
    with resource.open("r", encoding="utf-8") as lines:
        rows = _jsonl_rows(lines, source)
    texts, labels, _ = _rows_to_ids(rows, source, LABELS)
    return texts, labels


def load_labelled_file(
    path: str | Path, label_names: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Read a labelled CSV or JSON Lines file: `(texts, label ids (N,) int64, label_names)`.

    The format follows the extension: .csv (header with `text` and `label` columns) or
    .jsonl / .ndjson (one JSON object with "text" and "label" keys per line; blank lines are
    skipped). Texts are stripped of surrounding whitespace and must not be empty.

    With `label_names`, a label's id is its position there, and a label not in it is an error
    that names the file, the line and the expected labels. Without, the names are the file's
    distinct labels, sorted (numerically when they are all integers, so 0/1 files keep their ids).

    A CSV line with more fields than the header (a text holding an unquoted comma) and a header
    naming `text` or `label` twice are errors naming the file and the line.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + JSONL_SUFFIXES:
        supported = ", ".join(CSV_SUFFIXES + JSONL_SUFFIXES)
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected one of {supported}")
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a directory, not a dataset file")
    if not path.is_file():
        raise FileNotFoundError(f"no such dataset file: {path}")
    read_rows = _csv_rows if suffix in CSV_SUFFIXES else _jsonl_rows
    # read_text refuses a file that is not UTF-8, naming it, and drops the byte-order mark that
    # spreadsheet programs put at the start of a file; newline="" keeps the line breaks as they
    # are, so the csv module handles those inside quoted fields.
    rows = read_rows(io.StringIO(read_text(path), newline=""), str(path))
    return _rows_to_ids(rows, str(path), label_names)


def load_task(
    train: str | Path = "sentiment",
    test: str | Path | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Task:
    """A `Task` from the built-in name "sentiment", or from your files.

    - `load_task("sentiment")`: the built-in train/test splits (see the module docstring).
    - `load_task("train.csv", "test.csv")`: two files. The label names are those of the train
      file; a test label outside them is an error (the model would have no output for it).
    - `load_task("data.jsonl")`: one file, split at random but reproducibly. The rows are
      shuffled by `np.random.default_rng(seed).permutation`, the first `round(test_fraction * N)`
      (at least 1, at most N - 1) go to test and the rest to train; each split keeps the file's
      order. The split is not stratified, so a very rare label may land in only one split.

    `test_fraction` is a number in (0, 1) and `seed` an int >= 0 (read only in the last case).
    """
    number_in("test_fraction", test_fraction, "(0, 1)")
    seed = int_at_least("seed", seed, 0)
    if str(train) == "sentiment":
        if test is not None:
            raise ValueError("the built-in 'sentiment' task has its own test split; drop `test`")
        train_texts, train_labels = load_sentiment("train")
        test_texts, test_labels = load_sentiment("test")
        return Task("sentiment", LABELS, train_texts, train_labels, test_texts, test_labels)

    train_texts, train_labels, names = load_labelled_file(train)
    if test is not None:
        test_texts, test_labels, _ = load_labelled_file(test, label_names=names)
        return Task(Path(train).stem, names, train_texts, train_labels, test_texts, test_labels)

    n = len(train_texts)
    if n < 2:
        raise ValueError(f"{train}: {n} row(s) cannot be split into train and test")
    n_test = min(max(round(test_fraction * n), 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    test_idx, train_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
    return Task(
        Path(train).stem,
        names,
        [train_texts[i] for i in train_idx],
        train_labels[train_idx],
        [train_texts[i] for i in test_idx],
        train_labels[test_idx],
    )


def _csv_rows(lines: Iterable[str], source: str) -> list[Row]:
    """Rows of a CSV file with a header naming `text` and `label` columns."""
    reader = csv.DictReader(lines)
    if reader.fieldnames is None:
        raise ValueError(f"{source}: empty file; expected a header with 'text' and 'label'")
    missing = {"text", "label"} - set(reader.fieldnames)
    if missing:
        raise ValueError(
            f"{source}: header {reader.fieldnames} lacks column(s) {sorted(missing)}; "
            "expected 'text' and 'label'"
        )
    if PAIR_FIELD in reader.fieldnames:
        raise ValueError(f"{source}: column {PAIR_FIELD!r}: {NO_PAIRS}")
    # DictReader keeps the last of two columns of one name. Only ours are refused: spreadsheet
    # programs write a blank name for every empty column ("text,label,,").
    repeated = sorted({name for name in ("text", "label") if reader.fieldnames.count(name) > 1})
    if repeated:
        raise ValueError(f"{source}, line {reader.line_num}: the header names {repeated} more "
                         "than once; expected one 'text' and one 'label' column")
    rows = []
    for record in reader:
        # reader.line_num is the file line the record ended on (quoted fields may span lines).
        if None in record:  # DictReader's key for the fields past the header's
            n_fields = len(reader.fieldnames) + len(record[None])
            raise ValueError(f"{source}, line {reader.line_num}: {n_fields} fields, the header has "
                             f"{len(reader.fieldnames)} (quote a text that holds a comma)")
        rows.append(_row(reader.line_num, record["text"], record["label"], source))
    return rows


def _jsonl_rows(lines: Iterable[str], source: str) -> list[Row]:
    """Rows of a JSON Lines file: one object with "text" and "label" per non-blank line."""
    rows = []
    for line_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}, line {line_number}: invalid JSON ({error.msg})") from None
        # A malformed file is bad data, not a bad argument: ValueError like every other file error.
        if not isinstance(record, dict):
            raise ValueError(f"{source}, line {line_number}: expected a JSON object")
        missing = {"text", "label"} - record.keys()
        if missing:
            raise ValueError(
                f"{source}, line {line_number}: missing key(s) {sorted(missing)}; "
                "expected 'text' and 'label'"
            )
        if PAIR_FIELD in record:
            raise ValueError(f"{source}, line {line_number}: key {PAIR_FIELD!r}: {NO_PAIRS}")
        rows.append(_row(line_number, record["text"], record["label"], source))
    return rows


def _row(line_number: int, text: object, label: object, source: str) -> Row:
    """Check one example's text and label and normalise them to stripped strings."""
    where = f"{source}, line {line_number}"
    # None: a CSV line with fewer fields than the header.
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: empty or missing text")
    # bool is a subclass of int, but `true` is not a label anyone means.
    if isinstance(label, bool) or not isinstance(label, (str, int)) or not str(label).strip():
        raise ValueError(f"{where}: label must be a non-empty string or an integer, got {label!r}")
    return line_number, text.strip(), str(label).strip()


def _rows_to_ids(
    rows: list[Row], source: str, label_names: Sequence[str] | None
) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Turn rows into (texts, int64 ids, label names), checking labels against `label_names`."""
    if not rows:
        raise ValueError(f"{source}: no examples")
    if label_names is None:
        label_names = _label_names(rows, source)
    label_names = tuple(str(name) for name in label_names)
    label_id = {name: i for i, name in enumerate(label_names)}
    for line_number, _, label in rows:
        if label not in label_id:
            raise ValueError(
                f"{source}, line {line_number}: unknown label {label!r}; "
                f"expected one of {list(label_names)}"
            )
    texts = [text for _, text, _ in rows]
    labels = np.array([label_id[label] for _, _, label in rows], dtype=np.int64)  # (N,)
    return texts, labels, label_names


def _label_names(rows: list[Row], source: str) -> list[str]:
    """A file's distinct labels, sorted: numerically when all are integers, else as strings. The
    order is a function of the set of labels alone, so the ids do not change from run to run."""
    first_line = {}  # label -> the line it first appears on, in the file's order
    for line_number, _, label in rows:
        first_line.setdefault(label, line_number)
    spelling = {}  # integer -> its first spelling in the file
    for label, line_number in first_line.items():
        if re.fullmatch(r"[+-]?\d+", label):
            other = spelling.setdefault(int(label), label)
            if other != label:
                raise ValueError(
                    f"{source}, line {line_number}: labels {other!r} (line {first_line[other]}) "
                    f"and {label!r} are one number written two ways; write each label one way"
                )
    all_integers = len(spelling) == len(first_line)
    return sorted(first_line, key=int if all_integers else str)

"""The built-in sentiment task is balanced, clean and needs generalisation; the loaders read CSV and
JSON Lines files and fail with messages that say what is wrong and where."""

import json
import re
from collections import Counter
from itertools import product

import numpy as np
import pytest

from minilm.tasks import LABELS, Task, load_labelled_file, load_sentiment, load_task


def words(text: str) -> list[str]:
    """Lower-cased word tokens: the normal form used for duplicate checks and bag-of-words."""
    return re.findall(r"[a-z0-9']+", text.lower())


@pytest.fixture(scope="module")
def sentiment():
    return {split: load_sentiment(split) for split in ("train", "test")}


# --- the built-in task ---------------------------------------------------------------------------


@pytest.mark.parametrize("split, size", [("train", 400), ("test", 200)])
def test_sentiment_split_sizes_and_exact_balance(sentiment, split, size):
    texts, labels = sentiment[split]
    assert len(texts) == len(labels) == size
    assert labels.dtype == np.int64
    assert set(labels.tolist()) == {0, 1}
    assert np.bincount(labels).tolist() == [size // 2, size // 2]  # exactly balanced
    assert LABELS == ("negative", "positive")


def test_sentiment_texts_are_clean_and_of_varied_length(sentiment):
    """Every text is stripped, non-empty, 3 to 35 words; both short and long sentences occur."""
    lengths = [len(words(t)) for texts, _ in sentiment.values() for t in texts]
    assert all(t == t.strip() and t for texts, _ in sentiment.values() for t in texts)
    assert min(lengths) >= 3 and max(lengths) <= 35
    assert sum(n <= 5 for n in lengths) >= 30 and sum(n >= 20 for n in lengths) >= 5


def test_sentiment_has_no_duplicates_within_or_across_splits(sentiment):
    normalised = [" ".join(words(t)) for texts, _ in sentiment.values() for t in texts]
    repeated = [text for text, count in Counter(normalised).items() if count > 1]
    assert not repeated


def test_sentiment_has_no_near_duplicates_across_splits(sentiment):
    """No test sentence shares more than half its distinct words with a training sentence
    (Jaccard similarity of the word sets), so test scores are not memorisation."""
    train = [set(words(t)) for t in sentiment["train"][0]]
    test = [set(words(t)) for t in sentiment["test"][0]]
    closest = max(len(a & b) / len(a | b) for a, b in product(train, test))
    assert closest < 0.5, closest


def test_sentiment_test_split_uses_mostly_unseen_words(sentiment):
    """Over a third of the test split's words never occur in train (new domains, new synonyms)."""
    seen = {w for t in sentiment["train"][0] for w in words(t)}
    test_words = [w for t in sentiment["test"][0] for w in words(t)]
    unseen = sum(w not in seen for w in test_words) / len(test_words)
    assert unseen > 0.33, unseen


def naive_bayes_accuracy(train_texts, train_labels, eval_texts, eval_labels) -> float:
    """Multinomial naive Bayes on word counts with add-one smoothing; words unseen in training
    are ignored, which is all a model can do without pre-training."""
    vocab = {w: i for i, w in enumerate(sorted({w for t in train_texts for w in words(t)}))}

    def counts(texts):
        x = np.zeros((len(texts), len(vocab)))  # (N, V)
        for row, text in enumerate(texts):
            for w in words(text):
                if w in vocab:
                    x[row, vocab[w]] += 1
        return x

    x_train = counts(train_texts)
    log_probs = []
    for label in (0, 1):
        word_counts = x_train[train_labels == label].sum(axis=0) + 1.0  # (V,)
        log_probs.append(np.log(word_counts / word_counts.sum()))
    log_odds = log_probs[1] - log_probs[0]  # (V,) evidence for "positive"; the priors are equal
    predictions = (counts(eval_texts) @ log_odds > 0).astype(np.int64)
    return float((predictions == eval_labels).mean())


def test_bag_of_words_baseline_fits_train_but_not_test(sentiment):
    """A bag-of-words model learns train almost perfectly yet stays far from that on test: the
    test split cannot be solved by memorising training words (it measures generalisation)."""
    (train_texts, train_labels), (test_texts, test_labels) = sentiment["train"], sentiment["test"]
    train_acc = naive_bayes_accuracy(train_texts, train_labels, train_texts, train_labels)
    test_acc = naive_bayes_accuracy(train_texts, train_labels, test_texts, test_labels)
    print(f"bag-of-words naive Bayes: train accuracy {train_acc:.3f}, test accuracy {test_acc:.3f}")
    assert train_acc >= 0.9
    assert test_acc <= 0.75
    assert train_acc - test_acc >= 0.2


def test_load_sentiment_rejects_unknown_split():
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_sentiment("dev")


# --- loading files -------------------------------------------------------------------------------


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_load_csv_with_string_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text(
        'id,text,label\n1,Loved it,pos\n2,"Meh, not for me",neg\n3,"Two\nlines",pos\n',
        encoding="utf-8",
    )
    texts, labels, names = load_labelled_file(path)
    assert texts == ["Loved it", "Meh, not for me", "Two\nlines"]
    assert names == ("neg", "pos")  # sorted distinct labels
    assert labels.tolist() == [1, 0, 1] and labels.dtype == np.int64


def test_load_jsonl_with_integer_labels_sorted_numerically(tmp_path):
    records = [{"text": "a", "label": 10}, {"text": "b", "label": 2}, {"text": "c", "label": 0}]
    path = write_jsonl(tmp_path / "data.jsonl", records)
    texts, labels, names = load_labelled_file(path)
    assert texts == ["a", "b", "c"]
    assert names == ("0", "2", "10")  # numeric order, not string order ("10" < "2")
    assert labels.tolist() == [2, 1, 0]


def test_integer_and_string_spellings_of_a_label_agree(tmp_path):
    """A CSV "1" and a JSON 1 are the same label, so a 0/1 file loads with names ("0", "1")."""
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("text,label\nyes,1\nno,0\n", encoding="utf-8")
    jsonl_path = write_jsonl(
        tmp_path / "a.jsonl", [{"text": "yes", "label": 1}, {"text": "no", "label": 0}]
    )
    for path in (csv_path, jsonl_path):
        _, labels, names = load_labelled_file(path)
        assert names == ("0", "1") and labels.tolist() == [1, 0]


def test_given_label_names_fix_the_ids(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "fine", "label": "positive"}])
    _, labels, names = load_labelled_file(path, label_names=LABELS)
    assert names == LABELS and labels.tolist() == [1]


def test_unknown_label_names_file_line_label_and_expected(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,positive\nso-so,neutral\n", encoding="utf-8")
    with pytest.raises(ValueError) as error:
        load_labelled_file(path, label_names=LABELS)
    message = str(error.value)
    assert str(path) in message and "line 3" in message and "'neutral'" in message
    assert "negative" in message and "positive" in message


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("d.txt", "text,label\na,b\n", "unsupported file type '.txt'"),
        ("d.csv", "sentence,label\na,pos\n", r"lacks column\(s\) \['text'\]"),
        ("d.csv", "", "empty file"),
        ("d.csv", "text,label\n", "no examples"),
        ("d.csv", "text,label\n   ,pos\n", "line 2: empty or missing text"),
        ("d.csv", "text,label\nonly text\n", "line 2: label must be"),
        # an unquoted comma: without the check, "bad" would get the new label " awful food"
        ("d.csv", "text,label\ngood,pos\nbad, awful food,neg\n",
         r"line 3: 3 fields, the header has 2 \(quote a text"),
        ("d.csv", "text,label,text\na,pos,b\n", r"line 1: the header names \['text'\] more than"),
        ("d.csv", "label,text,label\npos,a,neg\n", r"\['label'\] more than once"),
        # two spellings of one integer: one label or two? (their order hung on PYTHONHASHSEED)
        ("d.csv", "text,label\na,1\nb,01\nc,1\n", r"line 3: labels '1' \(line 2\) and '01' are one"),
        ("d.csv", "text,label\na,-0\nb,x\nc,0\n", r"line 4: labels '-0' \(line 2\) and '0'"),
        ("d.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "+1"}\n',
         r"labels '1' \(line 1\) and '\+1' are one number written two ways"),
        ("d.jsonl", "", "no examples"),
        ("d.jsonl", '{"text": "a", "label": "x"}\n\n{"text": "b"}\n', r"line 3: missing key"),
        ("d.jsonl", '{"text": "", "label": "x"}\n', "line 1: empty or missing text"),
        ("d.jsonl", '{"text": "a", "label": 0.5}\n', "label must be"),
        ("d.jsonl", '{"text": "a", "label": true}\n', "label must be"),
        ("d.jsonl", '["a", "x"]\n', "expected a JSON object"),
        ("d.jsonl", '{"text": "a",\n', "line 1: invalid JSON"),
    ],
)
def test_bad_files_raise_value_errors_naming_the_file(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=expected) as error:
        load_labelled_file(path)
    assert str(path) in str(error.value)


def test_missing_file_raises_file_not_found(tmp_path):
    path = tmp_path / "absent.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load_labelled_file(path)
    path.mkdir()
    with pytest.raises(FileNotFoundError, match="is a directory, not a dataset file"):
        load_task(path)


def test_blank_header_columns_of_a_spreadsheet_are_ignored(tmp_path):
    """Spreadsheet programs name every empty column "": repeated, but not a column we read."""
    path = tmp_path / "sheet.csv"
    path.write_text("text,label,,\ngood,pos,,\nbad,neg,,\n", encoding="utf-8")
    texts, labels, names = load_labelled_file(path)
    assert texts == ["good", "bad"] and names == ("neg", "pos") and labels.tolist() == [1, 0]


# --- tasks ---------------------------------------------------------------------------------------


def test_load_task_sentiment_is_the_built_in_splits(sentiment):
    task = load_task("sentiment")
    assert isinstance(task, Task) and task.label_names == LABELS and task.num_labels == 2
    assert task.train_texts == sentiment["train"][0] and task.test_texts == sentiment["test"][0]
    assert np.array_equal(task.test_labels, sentiment["test"][1])
    with pytest.raises(ValueError, match="own test split"):
        load_task("sentiment", "other.csv")


def test_load_task_from_train_and_test_files(tmp_path):
    train = write_jsonl(
        tmp_path / "tr.jsonl", [{"text": "up", "label": "b"}, {"text": "x", "label": "a"}]
    )
    test = write_jsonl(tmp_path / "te.jsonl", [{"text": "down", "label": "a"}])
    task = load_task(train, test)
    assert task.name == "tr" and task.label_names == ("a", "b")
    assert task.train_labels.tolist() == [1, 0] and task.test_labels.tolist() == [0]
    unseen = write_jsonl(tmp_path / "bad.jsonl", [{"text": "?", "label": "c"}])
    with pytest.raises(ValueError, match="unknown label 'c'"):
        load_task(train, unseen)


def test_load_task_splits_one_file_80_20_reproducibly(tmp_path):
    records = [{"text": f"sentence {i}", "label": i % 3} for i in range(50)]
    path = write_jsonl(tmp_path / "all.jsonl", records)
    task = load_task(path)
    assert len(task.train_texts) == 40 and len(task.test_texts) == 10
    assert sorted(task.train_texts + task.test_texts) == sorted(r["text"] for r in records)
    for texts, labels in [
        (task.train_texts, task.train_labels),
        (task.test_texts, task.test_labels),
    ]:
        numbers = [int(t.split()[1]) for t in texts]
        assert [i % 3 for i in numbers] == labels.tolist()  # labels follow texts
        assert numbers == sorted(numbers)  # each split keeps the file's order, not the shuffle's
    assert load_task(path).test_texts == task.test_texts  # same seed, same split
    assert load_task(path, seed=1).test_texts != task.test_texts
    for bad in (1.0, float("nan"), "0.2"):
        with pytest.raises(ValueError, match="test_fraction must be a finite number in"):
            load_task(path, test_fraction=bad)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="seed must be an int >= 0"):
            load_task(path, seed=bad)
    one = write_jsonl(tmp_path / "one.jsonl", records[:1])
    with pytest.raises(ValueError, match="cannot be split"):
        load_task(one)
    three = write_jsonl(tmp_path / "three.jsonl", records[:3])
    split = load_task(three, test_fraction=0.9)  # round(2.7) = 3 would leave train empty
    assert (len(split.train_texts), len(split.test_texts)) == (1, 2)


def test_first_of_each_label_keeps_every_class_in_order():
    """The benchmarks' --smoke task: the first n sentences of each label, every class present."""
    task = load_task("sentiment")
    small = task.first_of_each_label(3, 2)
    assert small.label_names == task.label_names
    assert np.bincount(small.train_labels).tolist() == [3] * task.num_labels
    assert np.bincount(small.test_labels).tolist() == [2] * task.num_labels
    first_negative = [t for t, y in zip(task.train_texts, task.train_labels) if y == 0][:3]
    assert small.train_texts[:3] == first_negative

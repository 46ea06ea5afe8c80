"""The built-in corpus (grammar, unique decodability, exact entropy rate), MLM masking, CLM batches.

Statistical tests use fixed seeds and bounds of 4 standard errors (a false alarm about once in
16,000 runs for each bound), plus a small floor where float rounding could matter.
"""

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import seeds

from minilm import data
from minilm.tokenizers import CharTokenizer

# ---------------------------------------------------------------- the corpus: basic facts


def test_corpus_is_reproducible_from_its_seed():
    assert data.generate_corpus(20, seed=7) == data.generate_corpus(20, seed=7)
    assert data.generate_corpus(20, seed=7) != data.generate_corpus(20, seed=8)


def test_corpus_by_number_of_characters_keeps_whole_stories():
    text = data.generate_corpus(n_chars=5000, seed=3)
    stories = text.split("\n\n")[:-1]
    assert len(text) >= 5000 > len(text) - len(stories[-1]) - 2
    assert text == data.generate_corpus(len(stories), seed=3)


def test_corpus_alphabet_and_vocabulary():
    """29 characters (31 token ids); a few hundred distinct words."""
    text = data.generate_corpus(3000, seed=0)
    assert set(text) == set(data.CORPUS_ALPHABET)
    assert len(data.CORPUS_ALPHABET) == 29
    assert CharTokenizer.from_text(text).vocab_size == 31
    words = set(text.replace(".", " ").split())
    assert 300 <= len(words) <= 800


def test_story_lengths_and_the_docstring_example():
    """Stories average 150-400 characters; the example in the module docstring is a real story."""
    assert 150 <= data.expected_story_stats().length <= 400
    example = re.search(r"\n\n((?:    .*\n)+)\n", data.__doc__).group(1)
    story = example.replace("    ", "") + "\n"
    assert data.parse_story(story)


@pytest.mark.parametrize("bad", [["a b", "a"], ["at", "at noon"], ["Cat"], ["cat "], ["a  b"]])
def test_slots_refuse_phrases_that_could_not_be_read_back(bad):
    with pytest.raises(ValueError, match="slot"):
        data.Slot.uniform("test", bad)


def test_slots_refuse_bad_probabilities():
    with pytest.raises(ValueError, match="probabilities"):
        data.Slot("test", [("cat", 0.5, None), ("dog", 0.6, None)])


# ---------------------------------------------------------------- unique decodability


@given(seeds)
def test_parse_recovers_every_draw(seed):
    """parse(generate(choices)) == choices: the text determines the draws, so H(text) = H(draws)."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        text, choices = data.sample_story(rng)
        assert data.parse_story(text) == choices


@given(seeds)
def test_parse_rejects_what_the_grammar_cannot_write(seed):
    text, _ = data.sample_story(np.random.default_rng(seed))
    lines = text.split("\n")
    wrong_kind = {"she": "he", "he": "she", "they": "she"}
    for i in range(1, len(lines)):  # the first hero pronoun after line 1, swapped
        words = lines[i].split(" ")
        pronouns = [j for j, w in enumerate(words) if w in wrong_kind]
        if pronouns:
            words[pronouns[0]] = wrong_kind[words[pronouns[0]]]
            lines[i] = " ".join(words)
            break
    else:
        lines[-3] = lines[-3][:-1] + " again."  # no pronoun at all: make the ending too long
    for bad in ("\n".join(lines), text + "x", text[:-1], text.replace(".", "", 1)):
        with pytest.raises(ValueError, match="not a story"):
            data.parse_story(bad)


# ---------------------------------------------------------------- agreement, read off the text

PERSONAL = {"she": {"she", "her"}, "he": {"he", "his"}, "they": {"they", "their"}}
OPENERS = sorted([*data.OPENERS, data.ENDING], key=len, reverse=True)
ALL_NAMES = set(data.GIRL_NAMES) | set(data.BOY_NAMES)


def _read_hero(line):
    """(names, kind) from the first line, checking its own agreement."""
    single = re.fullmatch(r"(\w+) is (an?) (\w+) (girl|boy)\.", line)
    if single:
        name, article, trait, noun = single.groups()
        assert article == ("an" if trait[0] in "aeiou" else "a")
        assert name in (data.GIRL_NAMES if noun == "girl" else data.BOY_NAMES)
        return [name], "she" if noun == "girl" else "he"
    pair = re.fullmatch(r"(\w+) and (\w+) are (\w+) friends\.", line)
    assert pair, line
    assert pair[1] != pair[2] and {pair[1], pair[2]} <= ALL_NAMES
    return [pair[1], pair[2]], "they"


def _subject_and_verb(words, names, kind):
    """(is the subject plural?, its verb) of a line's words after the opener."""
    if words[0] == "the":
        return words[1] not in data.CREATURES, words[2]
    if words[0] == kind:
        return kind == "they", words[1]
    if words[: 2 * len(names) - 1] == " and ".join(names).split():
        return kind == "they", words[2 * len(names) - 1]
    raise AssertionError(f"unknown subject in {words}")


def test_base_verbs_do_not_end_in_s():
    """So "the verb ends in s" tells a singular verb from a plural one in the test below."""
    verbs = [*data.ACTIVITIES, *data.GET_VERBS]
    verbs += [v for _, kind_verbs in data.HERO_VERBS.values() for v in kind_verbs]
    assert not [v for v in verbs if v.endswith("s")]


@given(seeds)
def test_pronouns_names_verbs_and_references_agree(seed):
    """Every pronoun is the hero's, every name is the hero's, every verb agrees with its subject
    (singular iff it ends in s), a/an fits the next word, "her kite" names the thing found on
    line 2 and "the owl" the creature just met."""
    rng = np.random.default_rng(seed)
    for _ in range(10):
        text, _ = data.sample_story(rng)
        assert text.endswith(".\n\n") and "\n\n" not in text[:-2]
        lines = text[:-2].split("\n")
        names, kind = _read_hero(lines[0])
        thing = lines[1].rstrip(".").split()[-1]
        for previous, line in itertools.pairwise(lines):
            assert line.endswith(".")
            words = line[:-1].split()
            assert {w for w in words if w in set().union(*PERSONAL.values())} <= PERSONAL[kind]
            assert {w for w in words if w in ALL_NAMES} <= set(names)
            for word, after in itertools.pairwise(words):
                if word in ("a", "an"):
                    assert word == ("an" if after[0] in "aeiou" else "a"), line
                if word in PERSONAL[kind] - {kind}:  # a possessive
                    assert after == thing, (line, thing)
            opener = next((o for o in OPENERS if line.startswith(o + " ")), None)
            if opener is None:  # the line after a meeting
                assert words[0] == "the" and previous.rstrip(".").split()[-1] == words[1]
            else:
                words = words[len(opener.split()):]
            plural_subject, verb = _subject_and_verb(words, names, kind)
            assert verb.endswith("s") != plural_subject, line


# ---------------------------------------------------------------- the exact entropy rate


def test_entropy_rate_value():
    """The number quoted in the docstring and the README (changes only with the grammar)."""
    stats = data.expected_story_stats()
    assert stats.entropy == pytest.approx(93.54867, abs=1e-4)
    assert stats.length == pytest.approx(227.57798, abs=1e-4)
    assert data.corpus_entropy_rate() == pytest.approx(0.411062, abs=1e-6)


def test_entropy_rate_matches_monte_carlo():
    """-log p(story), summed from the parsed draws over sampled stories, per character, agrees with
    the exact E[H] / E[L] within 4 standard errors (delta method for a ratio of means; about 0.5%
    of the rate). E[H] and E[L] are checked one by one too, within 4 standard errors (about 0.5 nats
    and 1.6 characters): most of their spread comes from the number of events, so the number of
    opener draws, whose mean 1 + MIN_EVENTS + 1 / P_END is known, serves as a control variate."""
    rng = np.random.default_rng(2024)
    nats, chars, openers = [], [], []
    for _ in range(3000):
        text, _ = data.sample_story(rng)
        choices = data.parse_story(text)
        nats.append(-data.story_log_probability(choices))
        chars.append(len(text))
        openers.append(sum(c.slot == "opener" for c in choices))
    nats, chars, openers = np.array(nats), np.array(chars, dtype=float), np.array(openers)
    n, exact = len(nats), data.expected_story_stats()

    rate = nats.sum() / chars.sum()
    standard_error = (nats - rate * chars).std(ddof=1) / (math.sqrt(n) * chars.mean())
    assert abs(rate - data.corpus_entropy_rate()) < 4 * standard_error + 1e-6
    assert standard_error < 0.001  # the check has teeth: a quarter of a percent of the rate

    openers_mean = 1 + data.MIN_EVENTS + 1 / data.P_END
    for sample, expected in ((nats, exact.entropy), (chars, exact.length)):
        beta = np.cov(sample, openers)[0, 1] / openers.var(ddof=1)
        adjusted = sample - beta * (openers - openers_mean)
        assert abs(adjusted.mean() - expected) < 4 * adjusted.std(ddof=1) / math.sqrt(n)


# ---------------------------------------------------------------- load_text


def test_load_text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("héllo\nwörld\n", encoding="utf-8")
    assert data.load_text(path) == "héllo\nwörld\n"
    path.write_bytes(b"\xef\xbb\xbfbom")
    assert data.load_text(str(path)) == "bom"
    with pytest.raises(FileNotFoundError, match="no such"):
        data.load_text(tmp_path / "missing.txt")
    path.write_bytes(b"caf\xe9")  # Latin-1
    with pytest.raises(ValueError, match="not UTF-8"):
        data.load_text(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        data.load_text(path)


# ---------------------------------------------------------------- MLM masking

VOCAB, MASK, SPECIALS = 31, 1, [0, 1]


def _binomial_ok(count, n, p):
    return abs(count - n * p) <= 4 * math.sqrt(n * p * (1 - p))


def test_masking_statistics():
    """15% of ordinary tokens selected; of those 80% [MASK], 10% random, 10% kept (a random token
    equal to the original reads as kept: 0.1 + 0.1 / K with K ordinary ids). Each count within 4
    binomial standard deviations."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(400, 500))
    inputs, labels = data.mask_tokens(ids, rng, VOCAB, MASK, SPECIALS)
    special = np.isin(ids, SPECIALS)
    selected = labels != data.IGNORE_INDEX
    n_ordinary, n_selected = int((~special).sum()), int(selected.sum())
    k = VOCAB - len(SPECIALS)
    assert _binomial_ok(n_selected, n_ordinary, 0.15)
    assert not (selected & special).any()
    assert np.array_equal(labels[selected], ids[selected])
    assert np.array_equal(inputs[~selected], ids[~selected])
    became_mask = int((inputs[selected] == MASK).sum())
    kept = int((inputs[selected] == ids[selected]).sum())
    assert _binomial_ok(became_mask, n_selected, 0.8)
    assert _binomial_ok(kept, n_selected, 0.1 + 0.1 / k)
    assert _binomial_ok(n_selected - became_mask - kept, n_selected, 0.1 * (1 - 1 / k))
    replaced = inputs[selected & (inputs != MASK) & (inputs != ids)]
    assert set(replaced.tolist()) == set(range(2, VOCAB))  # every ordinary id, no special one


@given(seeds, st.lists(st.integers(1, 6), min_size=1, max_size=3), st.floats(0, 1))
def test_masking_invariants(seed, shape, mask_prob):
    """For any shape and rate: int64 outputs of the same shape, labels are the original or -100,
    unselected and special positions untouched, mask_prob 0 changes nothing."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 8, size=shape)
    inputs, labels = data.mask_tokens(ids, rng, 8, 3, [0, 3], mask_prob=mask_prob)
    assert inputs.shape == labels.shape == ids.shape
    assert inputs.dtype == labels.dtype == np.int64
    selected = labels != data.IGNORE_INDEX
    assert np.array_equal(labels[selected], ids[selected])
    assert np.array_equal(inputs[~selected], ids[~selected])
    assert not np.isin(ids[selected], [0, 3]).any()
    if mask_prob == 0:
        assert not selected.any()


def test_masking_is_reproducible_and_leaves_its_input_alone():
    ids = np.arange(2, 31).repeat(10)
    first = data.mask_tokens(ids, np.random.default_rng(5), VOCAB, MASK, SPECIALS)
    second = data.mask_tokens(ids, np.random.default_rng(5), VOCAB, MASK, SPECIALS)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert np.array_equal(ids, np.arange(2, 31).repeat(10))


@pytest.mark.parametrize("kwargs, name", [
    ({"mask_prob": 1.5}, "mask_prob"), ({"mask_prob": -0.1}, "mask_prob"),
    ({"mask_token_prob": 2.0}, "mask_token_prob"),
    ({"mask_token_prob": 0.8, "random_token_prob": 0.3}, "random_token_prob"),
    ({"ids": np.array([0, 31])}, "ids"), ({"ids": np.array([-1])}, "ids"),
    ({"ids": np.array([0.5])}, "ids"), ({"mask_id": 5}, "mask_id"),
    ({"special_ids": [0, 1, 40]}, "special_ids"), ({"special_ids": list(range(31))}, "special"),
])
def test_masking_rejects_bad_arguments(kwargs, name):
    args = {"ids": np.array([2, 3]), "rng": np.random.default_rng(0), "vocab_size": VOCAB,
            "mask_id": MASK, "special_ids": SPECIALS}
    with pytest.raises(ValueError, match=name):
        data.mask_tokens(**{**args, **kwargs})


# ---------------------------------------------------------------- batches


def test_clm_batch_targets_are_the_inputs_shifted_by_one():
    """With ids = 0, 1, 2, ... a window is a run of consecutive numbers; every start is reachable."""
    ids, seq_len = np.arange(20), 16
    inputs, targets = data.clm_batch(ids, 64, seq_len, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (64, seq_len)
    assert inputs.dtype == targets.dtype == np.int64
    assert np.array_equal(targets, inputs + 1)
    assert np.array_equal(np.diff(inputs, axis=1), np.ones((64, seq_len - 1)))
    assert set(inputs[:, 0].tolist()) == {0, 1, 2, 3}  # starts 0 .. len - seq_len - 1


def test_mlm_batch():
    ids = np.random.default_rng(0).integers(2, VOCAB, size=300)
    inputs, labels = data.mlm_batch(ids, 8, 300, np.random.default_rng(1), VOCAB, MASK, SPECIALS)
    assert inputs.shape == labels.shape == (8, 300)
    selected = labels != data.IGNORE_INDEX
    assert np.array_equal(labels[selected], np.broadcast_to(ids, (8, 300))[selected])
    assert np.array_equal(inputs[~selected], np.broadcast_to(ids, (8, 300))[~selected])


@pytest.mark.parametrize("ids, batch_size, seq_len, name", [
    (np.arange(16), 2, 16, "seq_len"), (np.arange(40), 0, 8, "batch_size"),
    (np.arange(40), 2, 0, "seq_len"), (np.zeros((4, 10), dtype=int), 2, 4, "1-D"),
    (np.linspace(0, 1, 40), 2, 8, "integers"),
])
def test_batches_reject_bad_arguments(ids, batch_size, seq_len, name):
    with pytest.raises(ValueError, match=name):
        data.clm_batch(ids, batch_size, seq_len, np.random.default_rng(0))


def test_split_train_val():
    ids = np.arange(1000)
    train, val = data.split_train_val(ids, 0.1)
    assert len(val) == 100 and np.array_equal(np.concatenate([train, val]), ids)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="val_fraction"):
            data.split_train_val(ids, bad)
    with pytest.raises(ValueError, match="non-empty"):
        data.split_train_val(np.arange(3), 0.1)


@given(st.integers(2, 300), st.integers(1, 5), st.integers(1, 40))
def test_eval_batches_cover_the_stream_once_in_order(n, batch_size, seq_len):
    """Every token after the first is a target exactly once, in order, after its own input; the
    padding is ignored; the same call gives the same batches."""
    ids = np.arange(100, 100 + n)
    batches = list(data.eval_batches(ids, batch_size, seq_len, pad_id=0))
    assert all(x.shape == y.shape and x.shape[1] == seq_len and 1 <= len(x) <= batch_size
               for x, y in batches)
    inputs = np.concatenate([x for x, _ in batches]).ravel()
    targets = np.concatenate([y for _, y in batches]).ravel()
    scored = targets != data.IGNORE_INDEX
    assert np.array_equal(targets[scored], ids[1:]) and np.array_equal(inputs[scored], ids[:-1])
    assert (inputs[~scored] == 0).all() and scored[: n - 1].all()
    assert len(targets) - (n - 1) < seq_len  # only the last window is padded
    again = list(data.eval_batches(ids, batch_size, seq_len, pad_id=0))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(batches, again))


@given(st.integers(2, 300), st.integers(1, 5), st.integers(1, 40), st.data())
def test_sliding_eval_windows_score_every_token_once_with_context(n, batch_size, seq_len, draw):
    """With a stride S < T, every token after the first is still scored exactly once, in order,
    right after its own input, and every token scored after the first window has at least T - S
    tokens of context in its window."""
    stride = draw.draw(st.integers(1, seq_len))
    ids = np.arange(100, 100 + n)
    inputs, targets = (np.concatenate(part) for part in
                       zip(*data.eval_batches(ids, batch_size, seq_len, stride=stride)))
    scored = targets != data.IGNORE_INDEX
    assert np.array_equal(targets[scored], ids[1:])
    assert np.array_equal(inputs[scored], ids[:-1])
    assert (np.nonzero(scored[1:])[1] >= seq_len - stride).all()
    with pytest.raises(ValueError, match="stride"):
        next(data.eval_batches(ids, batch_size, seq_len, stride=seq_len + 1))

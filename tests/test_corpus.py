"""The built-in corpus: its grammar, unique decodability, agreement, and the exact entropy rate.

Statistical tests use fixed seeds and bounds of 4 standard errors (a false alarm about once in
16,000 runs for each bound), plus a small floor where float rounding could matter.
"""

import itertools
import math
import re

import numpy as np
import pytest
from hypothesis import given

from minilm import corpus
from minilm.corpus import grammar
from minilm.testing.strategies import seeds
from minilm.tokenizers import CharTokenizer, load_tokenizer

# ---------------------------------------------------------------- the corpus: basic facts


def test_corpus_is_reproducible_from_its_seed():
    assert corpus.generate_corpus(20, seed=7) == corpus.generate_corpus(20, seed=7)
    assert corpus.generate_corpus(20, seed=7) != corpus.generate_corpus(20, seed=8)


def test_corpus_by_number_of_characters_keeps_whole_stories():
    text = corpus.generate_corpus(n_chars=5000, seed=3)
    stories = text.split("\n\n")[:-1]
    assert len(text) >= 5000 > len(text) - len(stories[-1]) - 2
    assert text == corpus.generate_corpus(len(stories), seed=3)


@pytest.mark.parametrize("kwargs, expected", [
    ({"n_stories": 0}, "n_stories must be an int >= 1, got 0"),
    ({"n_stories": 2.5}, "n_stories must be an int >= 1"),  # was 3 stories
    ({"n_stories": True}, "n_stories must be an int >= 1"),  # was 1 story
    ({"n_chars": float("nan")}, "n_chars must be an int >= 1"),  # was an empty corpus
    ({"n_stories": 1, "seed": -1}, "seed must be an int >= 0"),
    ({"n_stories": 1, "seed": 1.5}, "seed must be an int >= 0"),
    ({}, "exactly one of n_stories and n_chars"),
])
def test_corpus_refuses_bad_counts_and_seeds(kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        corpus.generate_corpus(**kwargs)


def test_corpus_alphabet_and_vocabulary():
    """29 characters (31 token ids); a few hundred distinct words."""
    text = corpus.generate_corpus(3000, seed=0)
    assert set(text) == set(corpus.CORPUS_ALPHABET)
    assert len(corpus.CORPUS_ALPHABET) == 29
    assert CharTokenizer.from_text(text).vocab_size == 31
    words = set(text.replace(".", " ").split())
    assert 300 <= len(words) <= 800


def test_the_char_tokenizer_saves_and_loads_back(tmp_path):
    """Into a directory save creates; load_tokenizer gives the same ids back."""
    tokenizer = CharTokenizer.from_text(corpus.generate_corpus(3000, seed=0))
    tokenizer.save(tmp_path / "runs" / "char")
    loaded = load_tokenizer(tmp_path / "runs" / "char")
    assert isinstance(loaded, CharTokenizer) and loaded.vocab_size == tokenizer.vocab_size
    text = "once a cat sat."
    assert loaded.encode(text).tolist() == tokenizer.encode(text).tolist()


def test_story_lengths_and_the_docstring_example():
    """Stories average 150-400 characters; the example in the module docstring is a real story."""
    assert 150 <= corpus.expected_story_stats().length <= 400
    example = re.search(r"\n\n((?:    .*\n)+)\n", corpus.__doc__).group(1)
    story = example.replace("    ", "") + "\n"
    assert corpus.parse_story(story)


@pytest.mark.parametrize("bad", [["a b", "a"], ["at", "at noon"], ["Cat"], ["cat "], ["a  b"]])
def test_slots_refuse_phrases_that_could_not_be_read_back(bad):
    with pytest.raises(ValueError, match="slot"):
        grammar.Slot.uniform("test", bad)


def test_slots_refuse_bad_probabilities():
    with pytest.raises(ValueError, match="probabilities"):
        grammar.Slot("test", [("cat", 0.5, None), ("dog", 0.6, None)])


# ---------------------------------------------------------------- unique decodability


@given(seeds)
def test_parse_recovers_every_draw(seed):
    """parse(generate(choices)) == choices: the text determines the draws, so H(text) = H(draws)."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        text, choices = corpus.sample_story(rng)
        assert corpus.parse_story(text) == choices


@given(seeds)
def test_parse_rejects_what_the_grammar_cannot_write(seed):
    text, _ = corpus.sample_story(np.random.default_rng(seed))
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
            corpus.parse_story(bad)


# ---------------------------------------------------------------- agreement, read off the text

PERSONAL = {"she": {"she", "her"}, "he": {"he", "his"}, "they": {"they", "their"}}
OPENERS = sorted([*grammar.OPENERS, grammar.ENDING], key=len, reverse=True)
ALL_NAMES = set(grammar.GIRL_NAMES) | set(grammar.BOY_NAMES)


def _read_hero(line):
    """(names, kind) from the first line, checking its own agreement."""
    single = re.fullmatch(r"(\w+) is (an?) (\w+) (girl|boy)\.", line)
    if single:
        name, article, trait, noun = single.groups()
        assert article == ("an" if trait[0] in "aeiou" else "a")
        assert name in (grammar.GIRL_NAMES if noun == "girl" else grammar.BOY_NAMES)
        return [name], "she" if noun == "girl" else "he"
    pair = re.fullmatch(r"(\w+) and (\w+) are (\w+) friends\.", line)
    assert pair, line
    assert pair[1] != pair[2] and {pair[1], pair[2]} <= ALL_NAMES
    return [pair[1], pair[2]], "they"


def _subject_and_verb(words, names, kind):
    """(is the subject plural?, its verb) of a line's words after the opener."""
    if words[0] == "the":
        return words[1] not in grammar.CREATURES, words[2]
    if words[0] == kind:
        return kind == "they", words[1]
    if words[: 2 * len(names) - 1] == " and ".join(names).split():
        return kind == "they", words[2 * len(names) - 1]
    raise AssertionError(f"unknown subject in {words}")


def test_base_verbs_do_not_end_in_s():
    """So "the verb ends in s" tells a singular verb from a plural one in the test below."""
    verbs = [*grammar.ACTIVITIES, *grammar.GET_VERBS]
    verbs += [v for _, kind_verbs in grammar.HERO_VERBS.values() for v in kind_verbs]
    assert not [v for v in verbs if v.endswith("s")]


@given(seeds)
def test_pronouns_names_verbs_and_references_agree(seed):
    """Every pronoun is the hero's, every name is the hero's, every verb agrees with its subject
    (singular iff it ends in s), a/an fits the next word, "her kite" names the thing found on
    line 2 and "the owl" the creature just met."""
    rng = np.random.default_rng(seed)
    for _ in range(10):
        text, _ = corpus.sample_story(rng)
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
    stats = corpus.expected_story_stats()
    assert stats.entropy == pytest.approx(93.54867, abs=1e-4)
    assert stats.length == pytest.approx(227.57798, abs=1e-4)
    assert corpus.corpus_entropy_rate() == pytest.approx(0.411062, abs=1e-6)


def test_entropy_rate_matches_monte_carlo():
    """-log p(story), summed from the parsed draws over sampled stories, per character, agrees with
    the exact E[H] / E[L] within 4 standard errors (delta method for a ratio of means; about 0.5%
    of the rate). E[H] and E[L] are checked one by one too, within 4 standard errors (about 0.5 nats
    and 1.6 characters): most of their spread comes from the number of events, so the number of
    opener draws, whose mean 1 + MIN_EVENTS + 1 / P_END is known, serves as a control variate."""
    rng = np.random.default_rng(2024)
    nats, chars, openers = [], [], []
    for _ in range(3000):
        text, _ = corpus.sample_story(rng)
        choices = corpus.parse_story(text)
        nats.append(-corpus.story_log_probability(choices))
        chars.append(len(text))
        openers.append(sum(c.slot == "opener" for c in choices))
    nats, chars, openers = np.array(nats), np.array(chars, dtype=float), np.array(openers)
    n, exact = len(nats), corpus.expected_story_stats()

    rate = nats.sum() / chars.sum()
    standard_error = (nats - rate * chars).std(ddof=1) / (math.sqrt(n) * chars.mean())
    assert abs(rate - corpus.corpus_entropy_rate()) < 4 * standard_error + 1e-6
    assert standard_error < 0.001  # the check has teeth: a quarter of a percent of the rate

    openers_mean = 1 + grammar.MIN_EVENTS + 1 / grammar.P_END
    for sample, expected in ((nats, exact.entropy), (chars, exact.length)):
        beta = np.cov(sample, openers)[0, 1] / openers.var(ddof=1)
        adjusted = sample - beta * (openers - openers_mean)
        assert abs(adjusted.mean() - expected) < 4 * adjusted.std(ddof=1) / math.sqrt(n)

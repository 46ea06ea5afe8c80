"""The built-in pre-training corpus: stories from a small stochastic grammar of English whose exact
entropy rate is known, so a model's loss can be compared with the floor no model can beat.

A small stochastic grammar writes short English-like stories, one sentence per line, a blank line
after each story:

    mia and leo are shy friends.
    at dusk they find a golden kite.
    then the mice giggle shyly.
    soon mia and leo meet an owl.
    the owl naps slowly.
    after that they hide their kite gently.
    in the end they hum warmly.

A story introduces a hero (a girl, a boy, or two friends); the hero's pronoun (she / he / they),
possessive (her / his / their) and verb forms (finds / find) stay consistent to the end, the thing
found on line 2 comes back as "their kite", a creature met comes back as "the owl". About six
hundred words fill the slots; every sentence is in the present tense, so every verb agrees with its
subject ("the owl naps", "the mice giggle"). The alphabet, `CORPUS_ALPHABET`, is newline, space,
period and the 26 lowercase letters: 29 characters (31 ids with CharTokenizer's pad and mask).

`grammar.py` holds the grammar (its slots, the words, the storyteller that writes and parses a
story); `entropy.py` computes the exact entropy rate from the grammar's distributions.
"""

from minilm.corpus.entropy import corpus_entropy_rate, expected_story_stats
from minilm.corpus.grammar import (
    CORPUS_ALPHABET,
    DEFAULT_STORIES,
    generate_corpus,
    parse_story,
    sample_story,
    story_log_probability,
)

__all__ = [
    "CORPUS_ALPHABET",
    "DEFAULT_STORIES",
    "corpus_entropy_rate",
    "expected_story_stats",
    "generate_corpus",
    "parse_story",
    "sample_story",
    "story_log_probability",
]

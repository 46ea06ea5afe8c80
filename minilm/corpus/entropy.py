"""The exact entropy rate of the built-in corpus: the loss floor of next-character prediction.

Why the entropy rate is known exactly
-------------------------------------
Every random decision of the generator is one draw from a `Slot`: an explicit, finite distribution
over phrases. A story is the sequence of its draws c_1, c_2, ... (the k-th slot may depend on the
earlier draws), and its probability is p(story) = prod_k p(c_k).

1. *Unique decodability.* Each drawn phrase is written at once, and within a slot no phrase is a
   word-prefix of another (checked when the slot is built), so `parse_story` can read every draw
   back from the text, left to right, without ever having to guess. A left inverse makes
   text = g(choices) injective, hence H(text) = H(choices): no information is lost or invented by
   turning choices into characters.
2. *Entropy of the choices.* By the chain rule, H(choices) = E[sum_k -log p(c_k | c_<k)]
   = E[sum_k H(slot_k)]: the expected sum of the entropies of the slots the story visits. By
   linearity this expectation, and the expected length E[L] in characters, are sums over the
   grammar's explicit distributions (`expected_story_stats` walks them; the number of events is
   geometric and independent of their content, so Wald's identity gives E[sum] = E[count] E[term]).
3. *Renewal.* Stories are i.i.d., and a story ends exactly where the text has its blank line
   (nowhere inside a story are two newlines adjacent), so the corpus splits uniquely into stories:
   H(first n stories) = n E[H(story)]. By the renewal-reward theorem the entropy of the first m
   characters per character tends to

       entropy rate = E[H(story)] / E[L(story)]          (nats per character)

   which `corpus_entropy_rate()` returns: 0.4111 nats (0.593 bits) per character, from stories of
   93.55 nats and 227.58 characters on average. It is the loss floor of next-character
   prediction: no model, of any size, has a lower expected cross-entropy on this text.

Why not more? Once a word is chosen its remaining letters are certain, so a slot of N equally
likely words of mean length L carries ln(N) / (L + 1) nats per character (ln 40 / 6 = 0.61), and
fixed words ("the", "is a", "her kite") carry none: English-like text drawn from a few hundred words
sits near 0.4 nats per character.

Assumed: the text starts at a story boundary and the rate is a long-run average (one story's own
cross-entropy fluctuates around it). A model that sees the whole current story can reach the floor;
the previous stories carry no information about the next one. A model with a 128-character window
sometimes loses the hero's introduction (90% of stories have 140-400 characters) and must then infer
the gender, the number and the thing from later lines, so its own floor is a little higher. And the
first characters of a window, predicted with almost no context, cost far more than the floor: compare
a model with the floor on positions that have a long context behind them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from minilm.corpus.grammar import (
    ACTS,
    COLOURED,
    CREATURE_FORMS,
    EVENT_SUBJECT_WEIGHTS,
    FEELING,
    FIRST_OPENERS,
    GETS,
    HERO_ACTIONS,
    HERO_COUNT,
    HERO_TRAITS,
    KIND_OF_NAME,
    MANNER,
    MET,
    MIN_EVENTS,
    NAMES,
    OPENERS_OR_END,
    P_END,
    PERSONS,
    PLACE,
    PLACE_ADJECTIVE,
    PREPOSITION,
    SUBJECT_WEIGHTS,
    THING,
    Slot,
    other_names,
)

# ---------------------------------------------------------------- the exact entropy rate


@dataclass(frozen=True)
class Stats:
    """Expected entropy (nats) and expected length (characters) of a part of a story."""

    entropy: float = 0.0
    length: float = 0.0

    def __add__(self, other: Stats) -> Stats:
        return Stats(self.entropy + other.entropy, self.length + other.length)

    def __rmul__(self, weight: float) -> Stats:
        return Stats(weight * self.entropy, weight * self.length)


# Length bookkeeping: a line "w1 w2 ... wk.\n" has sum_i (len(w_i) + 1) + 1 characters: each word
# counts with the character after it (a space, or the final "."), plus the newline.
LINE_END = Stats(length=1)    # "\n" after the "."
STORY_END = Stats(length=1)   # the blank line


def _fixed(text_length: float) -> Stats:
    """Fixed words (no choice, no entropy) of the given length."""
    return Stats(length=text_length + 1)


def _branch(options, then: Callable[[object], Stats] = lambda value: Stats()) -> Stats:
    """A draw followed by a part that depends on the drawn value:
    sum over (text length, p, value) of p * ((-log p, length + 1) + then(value))."""
    total = Stats()
    for length, p, value in options:
        total = total + p * (Stats(-math.log(p), length + 1) + then(value))
    return total


def _draw(slot: Slot, then: Callable[[object], Stats] = lambda value: Stats()) -> Stats:
    return _branch([(len(t), p, v) for t, p, v in slot.options], then)


def _subject(weights: dict[str, float], kind: str, name_length: float,
             then: Callable[[str], Stats] = lambda key: Stats()) -> Stats:
    """`_draw` over `Hero.subjects(weights)`, for a name of the given (mean) length."""
    lengths = {"pronoun": len(kind), "name": name_length, "world": len("the")}
    return _branch([(lengths[key], p, key) for key, p in weights.items()], then)


@functools.cache
def _act_stats(plural_subject: bool) -> Stats:
    return _draw(ACTS[plural_subject]) + _draw(MANNER)


@functools.cache
def _event_stats(kind: str, name_length: float) -> Stats:
    """One event after its opener, as `_tell_event` writes it."""
    plural_hero = kind == "they"
    continuations = {
        "act": _draw(MANNER),
        "go": _draw(PREPOSITION) + _fixed(len("the")) + _draw(PLACE_ADJECTIVE) + _draw(PLACE),
        # the thing was drawn independently of how often it is mentioned: its mean length suffices
        "use": _fixed(len(PERSONS[kind][1]) + 1 + THING.mean_length) + _draw(MANNER),
        "meet": _draw(MET, lambda met: LINE_END + _fixed(len("the ") + len(met[0]))
                      + _act_stats(met[1])),
        "feel": _draw(FEELING),
    }
    world = _draw(CREATURE_FORMS, lambda creature: _act_stats(creature[1]))
    hero = _draw(HERO_ACTIONS[plural_hero], lambda category: continuations[category])
    return _subject(EVENT_SUBJECT_WEIGHTS, kind, name_length,
                    lambda key: world if key == "world" else hero) + LINE_END


def _after_names_stats(kind: str, name_length: float) -> Stats:
    """Everything after the hero's name(s), as `_tell_story` writes it.

    The name is only ever copied into the text, so these stats depend on it through its length
    alone, and linearly: averaged over names, the mean name length can stand in for the name.
    """
    plural_hero = kind == "they"
    line_1 = _draw(HERO_TRAITS[plural_hero]) + _fixed(len(PERSONS[kind][2])) + LINE_END
    subject = _subject(SUBJECT_WEIGHTS, kind, name_length)
    line_2 = (_draw(FIRST_OPENERS) + subject + _draw(GETS[plural_hero]) + _draw(COLOURED)
              + _draw(THING) + LINE_END)
    # The events: MIN_EVENTS after FIRST_OPENERS draws, then after each further event one
    # OPENERS_OR_END draw, the last of which writes "in the end". The number D of these draws is
    # geometric, E[D] = 1 / P_END, there are N = MIN_EVENTS - 1 + D events, and neither count
    # depends on what the events say: by Wald's identity each contributes its count times its mean.
    n_draws = 1 / P_END
    n_events = MIN_EVENTS - 1 + n_draws
    events = (MIN_EVENTS * _draw(FIRST_OPENERS) + n_draws * _draw(OPENERS_OR_END)
              + n_events * _event_stats(kind, name_length))
    ending = subject + _act_stats(plural_hero) + LINE_END
    return line_1 + line_2 + events + ending + STORY_END


@functools.cache
def expected_story_stats() -> Stats:
    """E[H(story)] in nats and E[len(story)] in characters (blank line included), exactly."""

    def after_first(first: str) -> Stats:
        def after_count(pair: bool) -> Stats:
            if not pair:
                return _after_names_stats(KIND_OF_NAME[first], len(first))
            second = other_names(first)  # "mia and leo are": mean length of "mia and leo"
            name_length = len(f"{first} and ") + second.mean_length
            return _draw(second) + _fixed(len("are")) + _after_names_stats("they", name_length)

        return _draw(HERO_COUNT, after_count)

    return _draw(NAMES, after_first)


def corpus_entropy_rate() -> float:
    """The built-in corpus's entropy rate in nats per character: E[H(story)] / E[len(story)].

    Exact (up to float rounding) for the reasons in the module docstring: the loss floor of any
    character-level model of `generate_corpus` text.
    """
    stats = expected_story_stats()
    return stats.entropy / stats.length

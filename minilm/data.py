"""Data for pre-training: a built-in corpus with an exactly known entropy, MLM masking, CLM batches.

The built-in corpus
-------------------
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

import bisect
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

IGNORE_INDEX = -100  # label of positions that the loss skips (PyTorch's cross_entropy default)
DEFAULT_STORIES = 6000  # stories in the demo corpus, about 1.4 million characters
CORPUS_ALPHABET = "\n .abcdefghijklmnopqrstuvwxyz"
_LETTERS = CORPUS_ALPHABET[3:]

# ---------------------------------------------------------------- slots: explicit distributions


class Choice(NamedTuple):
    """One draw from a slot: the slot's name, the phrase written, its probability."""

    slot: str
    text: str
    probability: float


class Slot:
    """A random choice of the grammar: phrases with explicit probabilities (and a value each).

    The phrases of a slot are lowercase words separated by single spaces, and *word-prefix free*:
    no phrase is another one, or another's first words ("at" and "at noon" cannot share a slot;
    "bee" and "bees" can). That is what lets `parse_story` read every draw back from the text.
    """

    def __init__(self, name: str, options: list[tuple[str, float, object]]):
        self.name = name
        self.texts = tuple(text for text, _, _ in options)
        self.probs = tuple(float(p) for _, p, _ in options)
        self.values = tuple(value for _, _, value in options)
        if not options or abs(sum(self.probs) - 1.0) > 1e-9 or min(self.probs) <= 0:
            raise ValueError(f"slot {name!r}: probabilities must be positive and sum to 1")
        for text in self.texts:
            if text != " ".join(text.split()) or not set(text) <= set(" " + _LETTERS):
                raise ValueError(f"slot {name!r}: {text!r} is not lowercase words")
        # In sorted order a phrase's word-extensions ("at noon" of "at") come right after it, since
        # " " sorts before every letter: checking neighbours is enough.
        ordered = sorted(self.texts)
        for a, b in itertools.pairwise(ordered):
            if b == a or b.startswith(a + " "):
                raise ValueError(f"slot {name!r}: {a!r} is a word-prefix of {b!r}")
        self.cumulative = list(np.cumsum(self.probs))
        self.entropy = -sum(p * math.log(p) for p in self.probs)  # nats
        self.mean_length = sum(p * len(t) for t, p in zip(self.texts, self.probs))

    @classmethod
    def uniform(cls, name: str, texts, values=None) -> Slot:
        texts = list(texts)
        values = texts if values is None else list(values)
        return cls(name, [(t, 1 / len(texts), v) for t, v in zip(texts, values)])

    @property
    def options(self):
        """(text, probability, value) triples."""
        return zip(self.texts, self.probs, self.values)

    def sample(self, rng: np.random.Generator) -> int:
        index = bisect.bisect_right(self.cumulative, rng.random())
        return min(index, len(self.texts) - 1)  # guards the last cumulative sum's rounding

    def match(self, text: str, at: int) -> int | None:
        """The index of the phrase written at text[at:], or None. At most one can match: a match
        ends where a word ends, so two matches would make one phrase a word-prefix of the other."""
        for index, phrase in enumerate(self.texts):
            end = at + len(phrase)
            if text.startswith(phrase, at) and (end == len(text) or text[end] not in _LETTERS):
                return index
        return None


# ---------------------------------------------------------------- words and morphology


def _add_s(word: str) -> str:
    """English's one suffix for plurals and third-person verbs: fox-foxes, cry-cries, sing-sings."""
    if word.endswith(("s", "sh", "ch", "x", "z", "o")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def plural(noun: str) -> str:
    irregular = {"mouse": "mice", "goose": "geese", "wolf": "wolves", "elf": "elves"}
    return irregular.get(noun) or _add_s(noun)


def verb_form(verb: str, plural_subject: bool) -> str:
    """Present tense: "they sing", "she sings"."""
    return verb if plural_subject else _add_s(verb)


def with_article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _words(text: str) -> list[str]:
    return text.split()


GIRL_NAMES = _words("""
anna beth cleo dora emma fay gina hana ines jane kate lily mia nina olga pia rosa sara tess una
vera wren yara zoe
""")
BOY_NAMES = _words("""
adam ben carl dan eli finn gus hugo ivan jack kai leo max ned otto paul ravi sam tom udo vic
walt yuri zack
""")
TRAITS = _words("""
bold brave bright busy cheeky clever clumsy curious eager fair funny gentle humble jolly keen
kind lazy little lively lucky meek merry modest neat nimble noisy odd old polite proud quiet shy
silly sly smart tall tiny wise witty young
""")
GET_VERBS = _words("""
find get make buy win spot keep borrow
""")
COLOURS = _words("""
red blue green yellow orange purple pink brown black white gray golden silver
""")
THINGS = _words("""
bag ball basket bell belt book bottle bowl box brush candle cap coin comb cup doll drum feather
flag flute fork glove hat jar kettle key kite lamp lock map mirror pen pot ring rope scarf shell
sock spoon stone vase
""")
ACTIVITIES = _words("""
bake bow chat cheer clap cook cry dance doze draw dream frown giggle grin hop hum jog jump knit
laugh nap nod play read rest shout sigh sing skip sleep smile snore spin swim wait wave whistle
wink write yawn
""")
ADVERBS = _words("""
again alone badly boldly bravely busily calmly daily eagerly early fast fondly freely gently
gladly happily keenly kindly lazily loudly merrily neatly nicely oddly often openly proudly
quickly quietly sadly safely shyly slowly softly sweetly twice warmly well wildly wisely
""")
PREPOSITIONS = _words("""
to past into around near behind through across
""")
PLACE_ADJECTIVES = _words("""
big busy cosy dark deep empty far foggy grand hidden high lovely misty muddy narrow new old
quiet rocky sandy shady silent small snowy still sunny wet wide wild windy
""")
PLACES = _words("""
attic bakery barn beach bridge castle cave city creek dock farm field forest garden harbor hill
hut island jungle lake library market meadow mill mountain orchard palace park pond river school
shore station swamp tower tunnel valley village woods yard
""")
ANIMALS = _words("""
ant bat bear bee bird cat cow crab crow dog donkey duck eagle fox frog goat goose hare hawk hen
horse lamb lion mole mouse otter owl parrot pig pony rabbit robin seal snail spider swan tiger
toad wolf zebra
""")
PEOPLE = _words("""
baker chef clown doctor elf fairy farmer giant guard judge king knight miner nurse painter pilot
pirate poet prince queen sailor tailor teacher witch wizard
""")
EMOTIONS = _words("""
afraid angry bored calm cheerful cold cross dizzy excited glad gloomy grumpy happy hungry
jealous lonely nervous puzzled sad scared sick sleepy sorry surprised thirsty tired upset warm
weary worried
""")
OPENERS = ["then", "later", "soon", "next", "now", "meanwhile", "afterwards", "suddenly", "today",
           "tonight", "after that", "one day", "that day", "at noon", "at dusk", "at dawn",
           "at night", "by noon", "by night", "at once", "by dawn", "by dusk", "all day", "that night"]
ENDING = "in the end"

# What a hero can do after the subject: (weight, verbs) of each kind of verb; each kind has its
# own continuation in `_tell_event`:
#   act   she sings softly             go    she runs past the old mill
#   use   she paints her kite slowly   meet  she meets two owls. / the owls nap sadly.
#   feel  she feels sleepy
HERO_VERBS = {
    "act": (0.25, ACTIVITIES),
    "go": (0.25, _words("walk run ride hurry sail wander race go")),
    "use": (0.15, _words("carry clean drop fix hide hold hug lose open paint polish wash")),
    "meet": (0.2, _words("meet greet follow feed chase help watch see")),
    "feel": (0.15, _words("feel look seem grow")),
}

# (pronoun, possessive, noun) of each kind of hero; a single hero's kind follows from the name
PERSONS = {"she": ("she", "her", "girl"), "he": ("he", "his", "boy"),
           "they": ("they", "their", "friends")}
KIND_OF_NAME = {**{n: "she" for n in GIRL_NAMES}, **{n: "he" for n in BOY_NAMES}}

P_PAIR = 0.25  # probability that the story is about two friends
MIN_EVENTS = 2  # events in every story, before the ending may come
P_END = 1 / 3  # then, after each event, the probability that the next line is the ending
SUBJECT_WEIGHTS = {"pronoun": 0.7, "name": 0.3}  # who does it, on line 2 and in the ending
EVENT_SUBJECT_WEIGHTS = {"pronoun": 0.45, "name": 0.2, "world": 0.35}  # events: or a creature


def _by_number(name: str, verbs: list[str]) -> dict[bool, Slot]:
    """The same verbs for a singular and for a plural subject."""
    return {plural_subject: Slot.uniform(name, [verb_form(v, plural_subject) for v in verbs])
            for plural_subject in (False, True)}


CREATURES = ANIMALS + PEOPLE
NAMES = Slot.uniform("name", GIRL_NAMES + BOY_NAMES)
HERO_COUNT = Slot("hero count", [("is", 1 - P_PAIR, False), ("and", P_PAIR, True)])
HERO_TRAITS = {False: Slot.uniform("trait", map(with_article, TRAITS)),  # is a shy girl
               True: Slot.uniform("trait", TRAITS)}                       # are shy friends
FIRST_OPENERS = Slot.uniform("opener", OPENERS, values=[False] * len(OPENERS))
OPENERS_OR_END = Slot("opener", [(o, (1 - P_END) / len(OPENERS), False) for o in OPENERS]
                      + [(ENDING, P_END, True)])  # value: does the story end here?
GETS = _by_number("get", GET_VERBS)
COLOURED = Slot.uniform("colour", map(with_article, COLOURS))
THING = Slot.uniform("thing", THINGS)
ACTS = _by_number("act", ACTIVITIES)
MANNER = Slot.uniform("adverb", ADVERBS)
PREPOSITION = Slot.uniform("preposition", PREPOSITIONS)
PLACE_ADJECTIVE = Slot.uniform("place adjective", PLACE_ADJECTIVES)
PLACE = Slot.uniform("place", PLACES)
FEELING = Slot.uniform("emotion", EMOTIONS)
HERO_ACTIONS = {
    plural_subject: Slot("hero verb", [
        (verb_form(verb, plural_subject), weight / len(verbs), category)
        for category, (weight, verbs) in HERO_VERBS.items() for verb in verbs])
    for plural_subject in (False, True)
}
# "the owl" / "the owls": value (noun as written, plural?)
CREATURE_FORMS = Slot.uniform(
    "creature", CREATURES + [plural(c) for c in CREATURES],
    [(c, False) for c in CREATURES] + [(plural(c), True) for c in CREATURES])
# "an owl" / "three owls": half singular, half plural with one of five counts
COUNTS = ("two", "three", "four", "some", "many")
MET = Slot("met", [(with_article(c), 0.5 / len(CREATURES), (c, False)) for c in CREATURES]
           + [(f"{count} {plural(c)}", 0.5 / len(COUNTS) / len(CREATURES), (plural(c), True))
              for count in COUNTS for c in CREATURES])


@functools.cache
def _other_names(first: str) -> Slot:
    """The second friend: any name but the first one."""
    return Slot.uniform("second name", [n for n in NAMES.texts if n != first])


# ---------------------------------------------------------------- the story, told by a "teller"


@dataclass(frozen=True)
class Hero:
    name: str  # "mia" or "mia and leo"
    kind: str  # "she", "he" or "they"

    @property
    def plural(self) -> bool:
        return self.kind == "they"

    def subjects(self, weights: dict[str, float]) -> Slot:
        """Who the next sentence is about: the hero's pronoun, the hero's name, or "the" creature."""
        texts = {"pronoun": self.kind, "name": self.name, "world": "the"}
        return Slot("subject", [(texts[key], w, key) for key, w in weights.items()])


class _Teller:
    """Walks through one story. `_tell_story` asks it for every draw and every fixed word; a writer
    samples the draws and writes the text, a reader recovers the draws from a given text."""

    def __init__(self):
        self.choices: list[Choice] = []

    def choose(self, slot: Slot):
        index = self._pick(slot, self._separator())
        self.choices.append(Choice(slot.name, slot.texts[index], slot.probs[index]))
        return slot.values[index]

    def say(self, words: str) -> None:
        self._put(self._separator() + words)

    def end_line(self) -> None:
        self._put(".\n")

    def end_story(self) -> None:
        self._put("\n")  # the blank line

    def _separator(self) -> str:
        """Words are separated by one space, except at the start of a line."""
        return "" if self._previous_char() in ("", "\n") else " "


class _Writer(_Teller):
    def __init__(self, rng: np.random.Generator):
        super().__init__()
        self.rng, self.pieces = rng, []

    def _previous_char(self) -> str:
        return self.pieces[-1][-1] if self.pieces else ""

    def _pick(self, slot: Slot, separator: str) -> int:
        index = slot.sample(self.rng)
        self._put(separator + slot.texts[index])
        return index

    def _put(self, text: str) -> None:
        self.pieces.append(text)


class _Reader(_Teller):
    def __init__(self, text: str):
        super().__init__()
        self.text, self.at = text, 0

    def _previous_char(self) -> str:
        return self.text[self.at - 1] if self.at else ""

    def _pick(self, slot: Slot, separator: str) -> int:
        self._put(separator)
        index = slot.match(self.text, self.at)
        if index is None:
            raise ValueError(f"not a story of the grammar: at character {self.at} "
                             f"({self.text[self.at:self.at + 20]!r}) expected a {slot.name}")
        self.at += len(slot.texts[index])
        return index

    def _put(self, text: str) -> None:
        if not self.text.startswith(text, self.at):
            raise ValueError(f"not a story of the grammar: at character {self.at} "
                             f"({self.text[self.at:self.at + 20]!r}) expected {text!r}")
        self.at += len(text)


def _tell_story(teller: _Teller) -> None:
    """The grammar. The comments show what each step writes."""
    # line 1: the hero
    first = teller.choose(NAMES)                                  # mia
    if teller.choose(HERO_COUNT):                                 # is / and
        second = teller.choose(_other_names(first))               # leo
        teller.say("are")
        hero = Hero(f"{first} and {second}", "they")
    else:
        hero = Hero(first, KIND_OF_NAME[first])
    teller.choose(HERO_TRAITS[hero.plural])                       # a shy / shy
    teller.say(PERSONS[hero.kind][2])                             # girl / friends
    teller.end_line()
    # line 2: the thing
    subjects = hero.subjects(SUBJECT_WEIGHTS)
    teller.choose(FIRST_OPENERS)                                  # one day
    teller.choose(subjects)                                       # she
    teller.choose(GETS[hero.plural])                              # finds
    teller.choose(COLOURED)                                       # a golden
    thing = teller.choose(THING)                                  # kite
    teller.end_line()
    # the events, then the ending
    for _ in range(MIN_EVENTS):
        teller.choose(FIRST_OPENERS)                              # then
        _tell_event(teller, hero, thing)
    while not teller.choose(OPENERS_OR_END):                      # soon / ... / in the end
        _tell_event(teller, hero, thing)
    teller.choose(subjects)                                       # they
    _tell_act(teller, hero.plural)                                # hum warmly
    teller.end_line()
    teller.end_story()


def _tell_act(teller: _Teller, plural_subject: bool) -> None:
    teller.choose(ACTS[plural_subject])                           # sings
    teller.choose(MANNER)                                         # softly


def _tell_event(teller: _Teller, hero: Hero, thing: str) -> None:
    """One line after its opener (two lines when the hero meets a creature)."""
    if teller.choose(hero.subjects(EVENT_SUBJECT_WEIGHTS)) == "world":  # the
        _, creatures_plural = teller.choose(CREATURE_FORMS)       # mice
        _tell_act(teller, creatures_plural)                       # giggle shyly
        teller.end_line()
        return
    category = teller.choose(HERO_ACTIONS[hero.plural])           # sings / runs / paints / ...
    if category == "act":
        teller.choose(MANNER)                                     # softly
    elif category == "go":
        teller.choose(PREPOSITION)                                # past
        teller.say("the")
        teller.choose(PLACE_ADJECTIVE)                            # old
        teller.choose(PLACE)                                      # mill
    elif category == "use":
        teller.say(f"{PERSONS[hero.kind][1]} {thing}")            # her kite
        teller.choose(MANNER)                                     # slowly
    elif category == "meet":
        creature, creatures_plural = teller.choose(MET)           # an owl
        teller.end_line()
        teller.say(f"the {creature}")                             # the owl
        _tell_act(teller, creatures_plural)                       # naps slowly
    else:
        teller.choose(FEELING)                                    # sleepy
    teller.end_line()


def sample_story(rng: np.random.Generator) -> tuple[str, list[Choice]]:
    """One story (ending with its blank line) and the draws that wrote it."""
    writer = _Writer(rng)
    _tell_story(writer)
    return "".join(writer.pieces), writer.choices


def parse_story(text: str) -> list[Choice]:
    """The draws that wrote `text` (one story with its blank line); ValueError if none could.

    The left inverse of `sample_story`: parse_story(text) is the list of draws that wrote text.
    """
    reader = _Reader(text)
    _tell_story(reader)
    if reader.at != len(text):
        raise ValueError(f"not a story of the grammar: text continues after character {reader.at}")
    return reader.choices


def story_log_probability(choices: list[Choice]) -> float:
    """log p(story) = sum of the log-probabilities of its draws (nats)."""
    return sum(math.log(c.probability) for c in choices)


def generate_corpus(n_stories: int | None = None, seed: int = 0, *,
                    n_chars: int | None = None) -> str:
    """`n_stories` stories, or whole stories until there are at least `n_chars` characters.

    The same seed always gives the same text. Every story ends with a blank line.
    """
    if (n_stories is None) == (n_chars is None):
        raise ValueError("give exactly one of n_stories and n_chars")
    if (n_stories if n_chars is None else n_chars) < 1:
        raise ValueError(f"n_stories / n_chars must be >= 1, got {n_stories or n_chars}")
    rng = np.random.default_rng(seed)
    stories, length = [], 0
    while len(stories) < (n_stories or math.inf) and length < (n_chars or math.inf):
        stories.append(sample_story(rng)[0])
        length += len(stories[-1])
    return "".join(stories)


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
            second = _other_names(first)  # "mia and leo are": mean length of "mia and leo"
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


# ---------------------------------------------------------------- any text file


def load_text(path) -> str:
    """The contents of a UTF-8 text file (a leading byte-order mark is dropped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such text file: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (bad byte at offset {error.start}); "
                         "convert it first, e.g. `iconv -t utf-8`") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


# ---------------------------------------------------------------- masked language modelling


def mask_tokens(ids, rng: np.random.Generator, vocab_size: int, mask_id: int, special_ids,
                mask_prob: float = 0.15, mask_token_prob: float = 0.8,
                random_token_prob: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking (seed article, MLM): (inputs, labels) for ids of any shape.

    Each non-special token is selected independently with probability `mask_prob`; special ids
    (padding, [MASK], ...) never are. A selected token becomes [MASK] with probability
    `mask_token_prob` (0.8), a random token with probability `random_token_prob` (0.1), and stays
    as it is otherwise (0.1). Labels hold the original id at selected positions and IGNORE_INDEX
    (-100) elsewhere, so the loss is taken only where the model had to reconstruct a token.

    The random token is uniform over the *non-special* ids (Hugging Face's collator draws from the
    whole vocabulary): a "random" [MASK] or padding would only blur the 80/10/10 split. It can equal
    the original token, as in BERT, so a selected token reads unchanged with probability
    0.1 + 0.1 / (number of non-special ids).
    """
    ids = np.asarray(ids)
    special_ids = np.unique(np.asarray(special_ids, dtype=np.int64))
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids must lie in [0, vocab_size={vocab_size}), "
                         f"got {ids.min()}..{ids.max()}")
    if special_ids.size and (special_ids.min() < 0 or special_ids.max() >= vocab_size):
        raise ValueError(f"special_ids must lie in [0, vocab_size={vocab_size}), "
                         f"got {special_ids.tolist()}")
    if mask_id not in special_ids:
        raise ValueError(f"mask_id ({mask_id}) must be one of special_ids {special_ids.tolist()}")
    for name, p in (("mask_prob", mask_prob), ("mask_token_prob", mask_token_prob),
                    ("random_token_prob", random_token_prob)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {p}")
    if mask_token_prob + random_token_prob > 1.0:
        raise ValueError(f"mask_token_prob + random_token_prob must be <= 1, "
                         f"got {mask_token_prob} + {random_token_prob}")
    ordinary_ids = np.setdiff1d(np.arange(vocab_size), special_ids)
    if ordinary_ids.size == 0:
        raise ValueError("special_ids cover the whole vocabulary: nothing left to mask")

    selected = (rng.random(ids.shape) < mask_prob) & ~np.isin(ids, special_ids)
    fate = rng.random(ids.shape)  # one uniform draw decides mask / random / keep
    to_mask = selected & (fate < mask_token_prob)
    to_random = selected & (fate >= mask_token_prob) & (fate < mask_token_prob + random_token_prob)
    inputs = ids.astype(np.int64)  # a copy
    inputs[to_mask] = mask_id
    inputs[to_random] = rng.choice(ordinary_ids, size=int(to_random.sum()))
    labels = np.where(selected, ids, IGNORE_INDEX).astype(np.int64)
    return inputs, labels


# ---------------------------------------------------------------- batches of a token stream


def _check_stream(ids, batch_size: int, seq_len: int, window: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-D token stream, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if window > len(ids):
        raise ValueError(f"the stream has {len(ids)} tokens, fewer than the {window} that one "
                         f"window needs (seq_len={seq_len}); lower seq_len or give more text")
    return ids.astype(np.int64, copy=False)


def _random_windows(ids: np.ndarray, batch_size: int, length: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(batch_size, length) windows of ids at uniformly random starts."""
    starts = rng.integers(0, len(ids) - length + 1, size=batch_size)  # (B,)
    return ids[starts[:, None] + np.arange(length)]                    # (B, length)


def clm_batch(ids, batch_size: int, seq_len: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Causal LM: random windows of the stream; the targets are the inputs shifted by one.

    A window of seq_len + 1 tokens x_0 .. x_T gives inputs x_0 .. x_{T-1} and targets x_1 .. x_T:
    position t predicts the token after it. Shapes (B, T), int64.
    """
    ids = _check_stream(ids, batch_size, seq_len, seq_len + 1)
    windows = _random_windows(ids, batch_size, seq_len + 1, rng)  # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]                         # (B, T), (B, T)


def mlm_batch(ids, batch_size: int, seq_len: int, rng: np.random.Generator, vocab_size: int,
              mask_id: int, special_ids, mask_prob: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Masked LM: random windows of the stream through `mask_tokens`. (inputs, labels), (B, T)."""
    ids = _check_stream(ids, batch_size, seq_len, seq_len)
    windows = _random_windows(ids, batch_size, seq_len, rng)  # (B, T)
    return mask_tokens(windows, rng, vocab_size, mask_id, special_ids, mask_prob)


def split_train_val(ids, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 - val_fraction) of the stream for training, the rest for validation.

    Deterministic and contiguous: the validation text is never seen in training (a random split
    of windows would leak overlapping text).
    """
    ids = np.asarray(ids)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = round(len(ids) * val_fraction)
    if n_val < 1 or n_val >= len(ids):
        raise ValueError(f"a stream of {len(ids)} tokens cannot be split with "
                         f"val_fraction={val_fraction}: both parts must be non-empty")
    return ids[:-n_val], ids[-n_val:]


def eval_batches(ids, batch_size: int, seq_len: int, stride: int | None = None,
                 pad_id: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """CLM windows over the whole stream, in order: every token after the first is a target
    exactly once, so the mean loss over all batches is the stream's loss per token.

    Window k covers inputs ids[kS : kS + T] and targets ids[kS + 1 : kS + T + 1] (S = stride,
    default T: consecutive windows). With S < T the windows overlap (a sliding window) and each
    scores only its last S targets -- all T for the first window -- so every scored token after the
    first window is predicted from at least T - S tokens of context. Consecutive windows (S = T)
    start each window with an empty context, so their loss is a little above a sliding window's.
    The last window is padded: inputs with `pad_id`, targets with IGNORE_INDEX (a causal model's
    earlier positions never see the padding). Batches are (B, T) except possibly the last.
    """
    ids = _check_stream(ids, batch_size, seq_len, 2)
    stride = seq_len if stride is None else stride
    if not 1 <= stride <= seq_len:
        raise ValueError(f"stride must be in [1, seq_len={seq_len}], got {stride}")
    n_targets = len(ids) - 1
    n_windows = 1 + max(0, -(-(n_targets - seq_len) // stride))  # the last one reaches the end
    length = (n_windows - 1) * stride + seq_len
    inputs = np.full(length, pad_id, dtype=np.int64)
    targets = np.full(length, IGNORE_INDEX, dtype=np.int64)
    inputs[:n_targets], targets[:n_targets] = ids[:-1], ids[1:]
    positions = np.arange(n_windows)[:, None] * stride + np.arange(seq_len)  # (W, T)
    inputs, targets = inputs[positions], targets[positions]
    targets[1:, : seq_len - stride] = IGNORE_INDEX  # already scored by the window before
    for first in range(0, n_windows, batch_size):
        yield inputs[first: first + batch_size], targets[first: first + batch_size]

"""The story grammar of the built-in corpus: slots (explicit distributions over phrases), the words
that fill them, and one storyteller that both writes a story (drawing from the slots) and reads one
back (recovering every draw), which is what makes the corpus's entropy computable
(`minilm.corpus.entropy`).

A story introduces a hero (a girl, a boy, or two friends); the hero's pronoun (she / he / they),
possessive (her / his / their) and verb forms (finds / find) stay consistent to the end, the thing
found on line 2 comes back as "their kite", a creature met comes back as "the owl". About six
hundred words fill the slots; every sentence is in the present tense, so every verb agrees with its
subject ("the owl naps", "the mice giggle").
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from minilm.common.checks import int_at_least, positive_int

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
def other_names(first: str) -> Slot:
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
        second = teller.choose(other_names(first))               # leo
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

    The same seed (an int >= 0) always gives the same text. Every story ends with a blank line.
    """
    if (n_stories is None) == (n_chars is None):
        raise ValueError("give exactly one of n_stories and n_chars")
    n_stories = math.inf if n_stories is None else positive_int("n_stories", n_stories)
    n_chars = math.inf if n_chars is None else positive_int("n_chars", n_chars)
    rng = np.random.default_rng(int_at_least("seed", seed, 0))
    stories, length = [], 0
    while len(stories) < n_stories and length < n_chars:
        stories.append(sample_story(rng)[0])
        length += len(stories[-1])
    return "".join(stories)

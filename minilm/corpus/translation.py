"""A parallel corpus with a known answer: the story grammar's English rendered, sentence by
sentence, into Kelish, a synthetic language made for the purpose by deterministic rules.

Every English sentence of the grammar has exactly one Kelish translation, computed from that
sentence alone, so a translation model's output can be scored exactly (right or wrong) and its
errors read. The rules make translation more than word-for-word substitution:

    word order     verb last, the time word after it: subject, object or place, adverb, VERB,
                   opener ("then she paints her kite slowly." -> subject, kite, her, slowly,
                   paints, then); adjectives, articles and numbers follow their noun; prepositions
                   are postpositions ("past the old mill" -> mill old the past)
    agreement      every noun is of class a or class o (girls a, boys o, the rest fixed once by
                   the lexicon); a plural is class i. Adjectives, "the", "her/his/their", the
                   copula and every verb end in the class vowel of the noun they agree with (the
                   subject, for verbs): "toka" (golden, of a class-a noun), "toko" (class o)
    many-to-one    "is a" -> one word; "in the end", "one day", "at dusk" -> one word each; "a/an"
                   disappears; some English synonyms share one Kelish word (nap, doze, sleep)
    one-to-many    some verbs are a noun and a light verb ("she sings" -> "vegu fata", "they
                   sing" -> "vegu fati"), some adverbs two words ("twice" -> "zibe vez")

One story, line by line (names are the same in both languages):

    mia and leo are shy friends.               mia e leo amin musi esi.
    at dusk they find a golden kite.           eli mopi toko lamti rikine.
    then the mice giggle shyly.                milin ki taves levti fukime.
    soon mia and leo meet an owl.              mia e leo deba kosti telata.
    the owl naps slowly.                       deba ka dufuk dutta.
    after that they hide their kite gently.    eli mopi neno nusar fimti munozo.
    in the end they hum warmly.                eli pazes zapti latopu.

"kite" (mopi) is of class o, so "golden" is toko and "their" neno; "owl" (deba) is of class a, so
"the" is ka and "naps" dutta. The lexicon (`LEXICON`) is drawn once from a fixed seed, so it is the
same on every machine.

`translate_story(story)` reads a story with the grammar's own reader (`grammar._tell_story`,
driven by a translating teller) and returns its (English, Kelish) sentence pairs;
`parallel_corpus(n_stories, seed)` does it for many stories.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from minilm.corpus import grammar
from minilm.corpus.grammar import _Reader, _tell_story

# ---------------------------------------------------------------- the fixed words

PRONOUNS = {"a": "ela", "o": "elo", "i": "eli"}  # she, he, they: class a, o, plural
COPULA = {"a": "esa", "o": "eso", "i": "esi"}  # "is a" (many-to-one) / "are"
DEFINITE = {"a": "ka", "o": "ko", "i": "ki"}  # "the", after its noun phrase
POSSESSIVES = {"her": "sen", "his": "len", "their": "nen"}  # + the class vowel of the thing
COUNTS = {"two": "du", "three": "tri", "four": "kat", "some": "kel", "many": "mol"}
AND = "e"
LIGHT_VERB = "fat"  # + the class vowel of the subject: "make" in a noun + verb phrase
TIMES = "vez"  # the second word of two-word adverbs ("twice" -> "du vez")
PREPOSITIONS = {"to": "ad", "past": "pas", "into": "en", "around": "orn", "near": "pres",
                "behind": "dor", "through": "tra", "across": "trav"}  # postpositions
HERO_NOUNS = {"girl": ("lira", "a"), "boy": ("pado", "o"), "friends": ("amin", "i")}
# English words whose Kelish word is shared (many-to-one in the dictionary): the first of each group
# is translated, the others borrow its translation.
SYNONYMS = [("nap", "doze", "sleep"), ("smile", "grin"), ("walk", "wander"), ("hurry", "race"),
            ("happily", "gladly"), ("bold", "brave"), ("tiny", "little"), ("afraid", "scared"),
            ("glad", "happy"), ("forest", "woods"), ("lake", "pond")]
VOWELS = "aeiou"
CONSONANTS = "bdfgklmnprstvz"


class Noun(NamedTuple):
    stem: str  # singular; the plural adds "n"
    noun_class: str  # "a" or "o"

    def form(self, plural: bool) -> str:
        return self.stem + "n" if plural else self.stem


def _agree(stem: str, agreement: str) -> str:
    """An adjective, article-like word or verb agreeing with class `agreement` (a, o or i)."""
    return stem + agreement


# ---------------------------------------------------------------- the lexicon, drawn once


class Lexicon(NamedTuple):
    nouns: dict[str, Noun]  # things, places, animals, people (base form)
    adjectives: dict[str, str]  # traits, colours, place adjectives, emotions -> stem (+ a/o/i)
    verbs: dict[str, tuple[str, ...]]  # base verb -> (invariant words..., agreeing stem)
    adverbs: dict[str, tuple[str, ...]]
    openers: dict[str, str]  # "one day" -> one word


def _draw_lexicon(seed: int = 2026) -> Lexicon:
    """Invented words from CV syllables, unique across the whole language and never an English
    word of the grammar. Nouns are CVCV (plural CVCVn), adjective stems CVC (+ a/o/i), verb
    stems CVC + t (+ a/o/i), adverbs CVCVC, openers CVCVCV."""
    rng = np.random.default_rng(seed)
    english = set(" ".join(itertools.chain(
        grammar.NAMES.texts, grammar.TRAITS, grammar.COLOURS, grammar.THINGS, grammar.ACTIVITIES,
        grammar.ADVERBS, grammar.PLACE_ADJECTIVES, grammar.PLACES, grammar.CREATURES,
        grammar.EMOTIONS, grammar.OPENERS, grammar.PREPOSITIONS, grammar.GET_VERBS,
        *(verbs for _, verbs in grammar.HERO_VERBS.values()), ["in the end"])).split())
    taken = set(english) | {AND, LIGHT_VERB, TIMES} | set(COUNTS.values()) | set(
        PREPOSITIONS.values())
    for table in (PRONOUNS, COPULA, DEFINITE):
        taken |= set(table.values())
    taken |= {_agree(stem, c) for stem in (*POSSESSIVES.values(), LIGHT_VERB) for c in "aoi"}
    taken |= {stem for stem, _ in HERO_NOUNS.values()} | {stem + "n" for stem, _ in
                                                          HERO_NOUNS.values()}

    def word(pattern: str, forms) -> str:
        """A new word of `pattern` (C = consonant, V = vowel) all of whose `forms` are free."""
        while True:
            candidate = "".join(rng.choice(list({"C": CONSONANTS, "V": VOWELS}[p])) if p in "CV"
                                else p for p in pattern)  # other letters stand for themselves
            surface = forms(candidate)
            if not taken & set(surface) and len(set(surface)) == len(surface):
                taken.update(surface)
                return candidate

    synonym_of = {other: group[0] for group in SYNONYMS for other in group[1:]}

    def entries(words, make):
        table = {}
        for english_word in sorted(set(words) - set(synonym_of)):
            table[english_word] = make(english_word)
        for other, first in synonym_of.items():
            if first in table:
                table[other] = table[first]
        return table

    nouns = entries(grammar.THINGS + grammar.PLACES + grammar.CREATURES,
                    lambda _: Noun(word("CVCV", lambda s: [s, s + "n"]), str(rng.choice(["a", "o"]))))
    adjectives = entries(grammar.TRAITS + grammar.COLOURS + grammar.PLACE_ADJECTIVES
                         + grammar.EMOTIONS,
                         lambda _: word("CVC", lambda s: [_agree(s, c) for c in "aoi"]))
    all_verbs = grammar.ACTIVITIES + grammar.GET_VERBS + [
        v for _, verbs in grammar.HERO_VERBS.values() for v in verbs]
    light = set(sorted(set(grammar.ACTIVITIES) - set(synonym_of))[::5])  # one verb in five

    def verb(english_word):
        if english_word in light:  # a noun and the light verb: "giggle" -> "riso fat-"
            return word("CVCV", lambda s: [s]), LIGHT_VERB
        return (word("CVCt", lambda s: [_agree(s, c) for c in "aoi"]),)

    verbs = entries(all_verbs, verb)
    adverbs = entries(grammar.ADVERBS, lambda a: (word("CVCVC", lambda s: [s]),) if
                      a.endswith("ly") else (word("CVCV", lambda s: [s]), TIMES))
    openers = entries(grammar.OPENERS + [grammar.ENDING], lambda _: word("CVCVCV", lambda s: [s]))
    return Lexicon(nouns, adjectives, verbs, adverbs, openers)


LEXICON = _draw_lexicon()
# English inflected forms -> (base, plural?): "mice" -> ("mouse", True), "sings" -> ("sing", ...)
_NOUN_FORMS = {form: (noun, is_plural) for noun in LEXICON.nouns
               for form, is_plural in ((noun, False), (grammar.plural(noun), True))}
_VERB_BASES = {form: verb for verb in LEXICON.verbs for form in (verb, grammar.verb_form(verb, False))}


def _verb(english_form: str, agreement: str) -> list[str]:
    """A verb agreeing with its subject: every word but the last is invariant."""
    *invariant, stem = LEXICON.verbs[_VERB_BASES[english_form]]
    return [*invariant, _agree(stem, agreement)]


# ---------------------------------------------------------------- reading English, writing Kelish


class _Translator(_Reader):
    """The grammar's reader, which also writes each line in Kelish when the line ends.

    While a line is read, every draw (slot name -> text and value) and every fixed phrase is
    noted; at the end of the line `_render` turns the notes into the Kelish sentence. Only the
    line's own words are used, so a sentence's translation never depends on its story."""

    def __init__(self, text: str):
        super().__init__(text)
        self.lines: list[tuple[str, str]] = []
        self.notes: dict[str, tuple[str, object]] = {}
        self.phrases: list[str] = []
        self.line_start = 0

    def choose(self, slot):
        value = super().choose(slot)
        self.notes[slot.name] = (self.choices[-1].text, value)
        return value

    def say(self, words: str) -> None:
        super().say(words)
        self.phrases.append(words)

    def end_line(self) -> None:
        super().end_line()
        english = self.text[self.line_start:self.at - 1]  # without the newline
        self.lines.append((english, " ".join(_render(self.notes, self.phrases)) + "."))
        self.notes, self.phrases, self.line_start = {}, [], self.at

    def end_story(self) -> None:
        super().end_story()
        self.line_start = self.at


def _subject(text: str) -> tuple[list[str], str]:
    """(Kelish words, agreement class) of a hero subject: a pronoun, a name or two names."""
    if text in ("she", "he", "they"):
        agreement = {"she": "a", "he": "o", "they": "i"}[text]
        return [PRONOUNS[agreement]], agreement
    names = text.split(" and ")
    if len(names) == 2:
        return [names[0], AND, names[1]], "i"
    return [text], "a" if grammar.KIND_OF_NAME[text] == "she" else "o"


def _creature(form: str) -> tuple[list[str], str]:
    """(Kelish noun, agreement class) of a creature as written ("owl", "mice")."""
    noun, is_plural = _NOUN_FORMS[form]
    entry = LEXICON.nouns[noun]
    return [entry.form(is_plural)], "i" if is_plural else entry.noun_class


def _render(notes: dict, phrases: list[str]) -> list[str]:
    """One line's Kelish words, from what the reader noted while reading it."""
    text = {name: written for name, (written, _) in notes.items()}
    opener = [LEXICON.openers[text["opener"]]] if "opener" in text else []
    adverb = list(LEXICON.adverbs[text["adverb"]]) if "adverb" in text else []
    if "trait" in text:  # line 1: mia is a shy girl. / mia and leo are shy friends.
        noun, agreement = HERO_NOUNS[phrases[-1]]
        names = [text["name"], AND, text["second name"]] if "second name" in text else [
            text["name"]]
        trait = text["trait"].split()[-1]  # "a shy" -> "shy"
        return [*names, noun, _agree(LEXICON.adjectives[trait], agreement), COPULA[agreement]]
    if "subject" not in text or notes["subject"][1] == "world":  # the owls nap sadly
        form = text["creature"] if "creature" in text else phrases[0].split()[1]
        noun, agreement = _creature(form)
        return [*noun, DEFINITE[agreement], *adverb, *_verb(text["act"], agreement), *opener]
    subject, agreement = _subject(text["subject"])
    verb = _verb(text.get("get") or text.get("hero verb") or text["act"], agreement)
    return [*subject, *_middle(notes, text, phrases, agreement), *adverb, *verb, *opener]


def _middle(notes: dict, text: dict, phrases: list[str], agreement: str) -> list[str]:
    """What stands between a hero subject and the adverb: the object, the place, the creature met,
    the feeling (nothing for a plain activity or the ending)."""
    if "get" in text:  # a golden kite -> kite golden
        thing = LEXICON.nouns[text["thing"]]
        return [thing.stem, _agree(LEXICON.adjectives[text["colour"].split()[-1]],
                                   thing.noun_class)]
    category = notes["hero verb"][1] if "hero verb" in notes else "act"
    if category == "go":  # past the old mill -> mill old the past
        place = LEXICON.nouns[text["place"]]
        adjective = _agree(LEXICON.adjectives[text["place adjective"]], place.noun_class)
        return [place.stem, adjective, DEFINITE[place.noun_class],
                PREPOSITIONS[text["preposition"]]]
    if category == "use":  # her kite -> kite her
        possessor, thing_name = phrases[-1].split()
        thing = LEXICON.nouns[thing_name]
        return [thing.stem, _agree(POSSESSIVES[possessor], thing.noun_class)]
    if category == "meet":  # an owl -> owl;  three owls -> owls three
        *count, form = text["met"].split()
        noun, _ = _creature(form)
        return [*noun, *(COUNTS[c] for c in count if c in COUNTS)]
    if category == "feel":  # she feels sleepy -> she sleepy feels, the feeling agreeing with her
        return [_agree(LEXICON.adjectives[text["emotion"]], agreement)]
    return []  # act: she sings softly


# ---------------------------------------------------------------- the corpus


def translate_story(story: str) -> list[tuple[str, str]]:
    """The (English, Kelish) sentence pairs of one story of the grammar (with or without its
    final blank line); ValueError if it is not a story of the grammar."""
    translator = _Translator(story if story.endswith("\n\n") else story.rstrip("\n") + "\n\n")
    _tell_story(translator)
    return translator.lines


def parallel_corpus(n_stories: int, seed: int = 0) -> list[tuple[str, str]]:
    """The sentence pairs of `n_stories` stories of `grammar.generate_corpus(n_stories, seed)`,
    in order."""
    text = grammar.generate_corpus(n_stories, seed)
    return [pair for story in text.split("\n\n")[:-1] for pair in translate_story(story + "\n\n")]


def vocabulary() -> tuple[list[str], list[str]]:
    """(English words, Kelish words): every word either side of the corpus can write, sorted.
    Names belong to both languages."""
    english = set()
    for slot in vars(grammar).values():
        slots = slot.values() if isinstance(slot, dict) else [slot]
        for each in slots:
            if isinstance(each, grammar.Slot):
                english.update(w for text in each.texts for w in text.split())
    english |= set(grammar.NAMES.texts) | set(HERO_NOUNS) | set(POSSESSIVES) | set(grammar.PERSONS)
    english |= {"are", "the"}
    english.update(w for text in grammar.OPENERS + [grammar.ENDING] for w in text.split())
    kelish = {AND, TIMES, *grammar.NAMES.texts, *COUNTS.values(), *PREPOSITIONS.values(),
              *PRONOUNS.values(), *COPULA.values(), *DEFINITE.values(), *LEXICON.openers.values()}
    kelish |= {_agree(stem, c) for stem in (*POSSESSIVES.values(), LIGHT_VERB) for c in "aoi"}
    kelish |= {form for stem, _ in HERO_NOUNS.values() for form in (stem, stem + "n")}
    kelish |= {form for noun in LEXICON.nouns.values() for form in (noun.stem, noun.form(True))}
    kelish |= {_agree(stem, c) for stem in LEXICON.adjectives.values() for c in "aoi"}
    for words in LEXICON.verbs.values():
        kelish |= {*words[:-1], *(_agree(words[-1], c) for c in "aoi")}
    kelish |= {w for words in LEXICON.adverbs.values() for w in words}
    return sorted(english), sorted(kelish)

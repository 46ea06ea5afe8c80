"""The translation task: the English -> Kelish corpus (`minilm.corpus.translation`), its batches and
scores (`minilm.translation`), and the command line (`minilm train --objective seq2seq`,
`minilm translate`).

The corpus's rules are checked sentence by sentence against the lexicon, on every sentence of a
few hundred stories: the word order, the agreement of adjectives, possessives and verbs with the
class of their noun, the words that merge or split."""

import json
import re

import pytest
import sacrebleu

from minilm.checkpoint import read_run
from minilm.cli import main
from minilm.common.names import IGNORE_INDEX
from minilm.corpus import grammar
from minilm.corpus import translation as kelish
from minilm.train import TrainSettings, train
from minilm.translation import (
    TRANSLATION_MODEL,
    encode_pairs,
    seq2seq_batch,
    translation_scores,
    translation_tokenizer,
)

PAIRS = kelish.parallel_corpus(400, seed=3)
LEX = kelish.LEXICON


def agreement_of(subject: str) -> str:
    return {"she": "a", "he": "o", "they": "i"}.get(subject) or (
        "i" if " and " in subject else "a" if grammar.KIND_OF_NAME[subject] == "she" else "o")


def subject_words(subject: str) -> list[str]:
    """A hero subject in Kelish: a pronoun by its class, or the name(s) joined by "e"."""
    if subject in ("she", "he", "they"):
        return [kelish.PRONOUNS[agreement_of(subject)]]
    return subject.replace(" and ", f" {kelish.AND} ").split()


def verb(english: str, agreement: str) -> list[str]:
    base = english if english in LEX.verbs else next(v for v in LEX.verbs
                                                      if grammar.verb_form(v, False) == english)
    *words, stem = LEX.verbs[base]
    return [*words, stem + agreement]


# ---------------------------------------------------------------- the corpus


def test_every_english_sentence_has_exactly_one_translation():
    seen = {}
    for english, target in PAIRS:
        assert seen.setdefault(english, target) == target, english
    assert len(PAIRS) > 2500 and all(t.endswith(".") for _, t in PAIRS)
    assert kelish.parallel_corpus(5, seed=3) == PAIRS[:len(kelish.parallel_corpus(5, seed=3))]


def test_the_lexicon_is_drawn_the_same_way_every_time():
    assert kelish._draw_lexicon() == LEX
    english, words = kelish.vocabulary()
    assert set(english) & set(words) == set(grammar.NAMES.texts)  # names are shared, nothing else
    used = {w for _, target in PAIRS for w in target[:-1].split()}
    assert used <= set(words)


def check_rule(pattern, keep, expected_words, at_least, pairs=PAIRS):
    """Every pair whose English matches `pattern` (and `keep(match)`) has the Kelish sentence
    `expected_words(*match.groups())` + "."; more than `at_least` pairs are checked."""
    checked = 0
    for english, target in pairs:
        match = pattern.match(english)
        if match and keep(match):
            assert target == " ".join(expected_words(*match.groups())) + ".", english
            checked += 1
    assert checked > at_least


def test_objects_come_before_the_verb_and_agree_with_their_noun():
    """"<opener> she paints her kite slowly." -> she, kite, her-<class of kite>, slowly, paint-a,
    <opener>: the verb last but the time word, the possessive after its noun and agreeing with it."""
    def expected(opener, subject, english_verb, possessor, thing, adverb):
        noun = LEX.nouns[thing]
        return [kelish.PRONOUNS[agreement_of(subject)], noun.stem,
                kelish.POSSESSIVES[possessor] + noun.noun_class, *LEX.adverbs[adverb],
                *verb(english_verb, agreement_of(subject)), LEX.openers[opener]]

    check_rule(re.compile(r"^(.+) (she|he|they) (\w+) (her|his|their) (\w+) (\w+)\.$"),
               lambda match: match[5] in LEX.nouns, expected, at_least=50)


def test_places_take_postpositions_and_articles_after_the_noun():
    """"... runs past the old mill." -> mill old-<class> the-<class> past run-<subject>."""
    def expected(opener, subject, english_verb, preposition, adjective, place):
        noun, agreement = LEX.nouns[place], agreement_of(subject)
        return [*subject_words(subject), noun.stem, LEX.adjectives[adjective] + noun.noun_class,
                kelish.DEFINITE[noun.noun_class], kelish.PREPOSITIONS[preposition],
                *verb(english_verb, agreement), LEX.openers[opener]]

    check_rule(re.compile(r"^(.+?) (\w+(?: and \w+)?|she|he|they) (\w+) (\w+) the (\w+) (\w+)\.$"),
               lambda match: match[4] in kelish.PREPOSITIONS and match[6] in LEX.nouns,
               expected, at_least=50)


def test_feelings_come_before_the_verb_and_agree_with_the_subject():
    """"<opener> mia and leo look weary." -> mia e leo, weary-i, look-i, <opener>: the feeling
    agrees with the subject (a, o, or i for two names or "they"), not with a fixed class."""
    def expected(opener, subject, english_verb, emotion):
        agreement = agreement_of(subject)
        return [*subject_words(subject), LEX.adjectives[emotion] + agreement,
                *verb(english_verb, agreement), LEX.openers[opener]]

    check_rule(re.compile(r"^(.+?) (she|he|they|\w+ and \w+|\w+) (feels?|looks?) (\w+)\.$"),
               lambda match: match[1] in LEX.openers, expected, at_least=20)


def test_counted_creatures_met_are_plural_with_the_number_after_them():
    """"<opener> she meets three dogs." -> ela, dogs, three, meet-a, <opener>: the plural noun
    (stem + n), then the count word, never the count first."""
    singular = {grammar.plural(noun): noun for noun in LEX.nouns}

    def expected(opener, subject, english_verb, count, creatures):
        return [*subject_words(subject), LEX.nouns[singular[creatures]].form(True),
                kelish.COUNTS[count], *verb(english_verb, agreement_of(subject)),
                LEX.openers[opener]]

    check_rule(re.compile(r"^(.+?) (she|he|they|\w+ and \w+|\w+) (meets?) "
                          rf"({'|'.join(kelish.COUNTS)}) (\w+)\.$"),
               lambda match: match[1] in LEX.openers, expected, at_least=20,
               pairs=kelish.parallel_corpus(1000, seed=3))  # ~3 in 100 stories have one


def test_words_merge_and_split():
    """Many-to-one: "in the end" and "is a" are one word each, synonyms share one; one-to-many:
    light verbs and two-word adverbs."""
    endings = [(e, t) for e, t in PAIRS if e.startswith("in the end ")]
    assert endings and all(t.split()[-1] == LEX.openers["in the end"] + "." for _, t in endings)
    intro = [(e, t) for e, t in PAIRS if " is a" in e or " is an" in e]
    assert intro and all(len(t.split()) == len(e.split()) - 1 for e, t in intro)
    assert LEX.verbs["doze"] == LEX.verbs["nap"] == LEX.verbs["sleep"]
    assert any(len(words) == 2 for words in LEX.verbs.values())
    assert LEX.adverbs["twice"][-1] == kelish.TIMES and len(LEX.adverbs["slowly"]) == 1


def test_the_docstring_example_is_real():
    story = "mia and leo are shy friends.\nat dusk they find a golden kite.\n" \
            "then the mice giggle shyly.\nsoon mia and leo meet an owl.\nthe owl naps slowly.\n" \
            "after that they hide their kite gently.\nin the end they hum warmly.\n\n"
    pairs = kelish.translate_story(story)
    assert [e for e, _ in pairs] == story.split("\n")[:7]
    for english, target in pairs:
        assert f"{english:<43}{target}" in kelish.__doc__


def test_a_text_that_is_not_a_story_is_refused():
    with pytest.raises(ValueError, match="not a story of the grammar"):
        kelish.translate_story("mia is a purple girl.\n\n")


# ---------------------------------------------------------------- batches and scores


def test_batches_are_teacher_forcing_with_padding_ignored():
    tokenizer = translation_tokenizer()
    pairs = encode_pairs(tokenizer, PAIRS[:8])
    (source, mask, target_ids), targets = seq2seq_batch(pairs, [0, 3, 5], tokenizer)
    for row, pair in enumerate(pairs[i] for i in (0, 3, 5)):
        n = len(pair.target)
        assert source[row, :len(pair.source)].tolist() == pair.source
        assert mask[row].sum() == len(pair.source) and pair.source[-1] == tokenizer.sep_id
        assert target_ids[row, :n + 1].tolist() == [tokenizer.cls_id, *pair.target]
        assert targets[row, :n + 1].tolist() == [*pair.target, tokenizer.sep_id]
        assert (targets[row, n + 1:] == IGNORE_INDEX).all()
    assert tokenizer.decode(pairs[0].target).replace(" .", ".") == PAIRS[0][1]
    assert tokenizer.unk_id not in {i for p in pairs for i in p.source + p.target}


def test_scores():
    references = ["eli kiru dora fenti.", "ela molor tolti."]
    perfect = translation_scores(references, references)
    assert perfect["exact_match"] == 1.0 and perfect["bleu"] == pytest.approx(100.0)
    one_wrong = translation_scores(["eli kiru doro fenti.", "ela molor tolti."], references)
    assert one_wrong["exact_match"] == 0.5 and one_wrong["bleu"] < 100 and one_wrong["chrf"] < 100
    with pytest.raises(ValueError, match="as many hypotheses as references"):
        translation_scores(["a."], references)


def test_bleu_and_chrf_score_the_hypotheses_against_the_references():
    """A hypothesis shorter than its reference: BLEU's brevity penalty and chrF's recall weight
    make the order matter, so scores with the two swapped (49.3 BLEU, 85.4 chrF) are refused."""
    hypotheses = ["eli kiru.", "ela molor tolti."]
    references = ["eli kiru doro fenti.", "ela molor tolti."]
    scores = translation_scores(hypotheses, references)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hypotheses, [references]).score,
                                           abs=1e-9)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hypotheses, [references]).score,
                                           abs=1e-9)
    assert scores["bleu"] == pytest.approx(64.2193, abs=1e-3)
    assert scores["chrf"] == pytest.approx(66.0293, abs=1e-3)


# ---------------------------------------------------------------- the command line


def test_train_and_translate_from_the_command_line(tmp_path, capsys):
    """A few steps of `minilm train --objective seq2seq` write a run directory (metrics.json with
    the held-out scores, the loss plot) that `minilm translate` reads, greedy and with beams."""
    out = tmp_path / "run"
    assert main(["train", "--objective", "seq2seq", "--preset", "tiny", "--steps", "4",
                 "--batch-size", "8", "--eval-every", "2", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == "seq2seq" and len(metrics["history"]["val_loss"]) == 2
    assert set(metrics["translation"]) == {"exact_match", "bleu", "chrf", "sentences"}
    assert (out / "loss_curve.png").is_file()
    assert json.loads((out / "config.json").read_text())["minilm"]["kind"] == "seq2seq"
    capsys.readouterr()
    assert main(["translate", "--checkpoint", str(out), "then she sings softly. mia naps.",
                 "--beams", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "then she sings softly." and lines[2] == "mia naps."
    assert lines[1].startswith("  -> ")


def test_seq2seq_trains_the_translation_model_by_default(tmp_path):
    """Without a config (or --preset), seq2seq training builds TRANSLATION_MODEL's shape, not the
    demo preset's; one home for that default (`train`), which the command line leaves to it."""
    train(TrainSettings(objective="seq2seq", steps=1, batch_size=8, eval_every=1), None, None,
          tmp_path, progress=False)
    run = read_run(tmp_path)
    assert (run.config.d_model, run.config.n_layers) == (TRANSLATION_MODEL.d_model,
                                                         TRANSLATION_MODEL.n_layers)
    assert run.metadata["settings"]["seq_len"] is None  # seq2seq has no window to record


def test_seq2seq_refuses_a_seq_len_from_the_python_api_too():
    """A seq_len means nothing to seq2seq (each batch pads to its longest sentence): refused by
    the settings check, as --text is, rather than silently ignored."""
    with pytest.raises(ValueError, match="seq_len is for clm and mlm, got seq_len=64"):
        TrainSettings(objective="seq2seq", seq_len=64)


@pytest.mark.parametrize("argv, message", [
    (["translate", "--checkpoint", "RUN", "the dragon sings."], "no token for: \\['dragon'\\]"),
    (["translate", "--checkpoint", "RUN", "then she sings softly!"],
     "no token for: \\['softly!'\\]"),  # softly, [UNK]: a word with an unknown piece
    (["translate", "--checkpoint", "RUN", "日本"], "no token for: \\['日本'\\]"),
    (["translate", "--checkpoint", "RUN", "she sings.", "--beams", "0"], "--beams must be"),
    (["translate", "--checkpoint", "RUN", " . "], "give the English text"),
    (["train", "--objective", "seq2seq", "--text", "TEXT"], "--text is for clm and mlm"),
    (["train", "--objective", "seq2seq", "--seq-len", "64"],
     "--seq-len is for clm and mlm, got --seq-len=64: seq2seq sets its own lengths"),
])
def test_bad_command_lines_say_what_is_wrong(tmp_path, capsys, argv, message):
    from minilm.checkpoint import save_run
    from minilm.config import ModelConfig
    from minilm.numpy import Seq2Seq

    tokenizer = translation_tokenizer()
    run = tmp_path / "run"
    save_run(run, Seq2Seq(ModelConfig.preset("tiny", vocab_size=tokenizer.vocab_size)), tokenizer)
    text = tmp_path / "x.txt"  # an existing file: a missing one is reported first
    text.write_text("some text")
    argv = [{"RUN": str(run), "TEXT": str(text)}.get(a, a) for a in argv]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)

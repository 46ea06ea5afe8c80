"""Machine translation, the task (seed §5): the English -> Kelish parallel corpus as training data for
a `Seq2Seq`, sentences in and out, and scores.

    data = translation_data(n_stories=6000, n_heldout_stories=300, seed=0)
    inputs, targets = seq2seq_batch(data.train, rows, data.tokenizer)     # teacher forcing
    model = Seq2Seq(dataclasses.replace(TRANSLATION_MODEL, vocab_size=data.tokenizer.vocab_size))
    translate(model, data.tokenizer, ["then she sings softly."], num_beams=4)
    translation_scores(hypotheses, references)    # exact match, BLEU and chrF (sacrebleu)

Tokens are words: `translation_tokenizer()` is a WordPiece vocabulary holding every word of both
languages whole (and "."), so a sentence of n words is n tokens. A source is its words then [SEP]
(the end token); the decoder reads [CLS] (the start token) then the target's words and must
predict, at each position, the next word, and [SEP] after the last: teacher forcing, the target
shifted right by one.

Held-out sentences come from held-out *stories*, stories the model never trains on; most of their
sentences (about 85%) never occur in training either, since a story's sentences are drawn afresh.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minilm.beam import beam_search, greedy_decode
from minilm.common.checks import positive_int
from minilm.common.names import IGNORE_INDEX
from minilm.config import ModelConfig
from minilm.corpus import grammar
from minilm.corpus.translation import translate_story, vocabulary
from minilm.tokenizers import WordPieceTokenizer

# The model `minilm train --objective seq2seq` trains unless told otherwise (--preset): 2 + 2
# layers, C = 64, 4 heads; 0.34M parameters with the corpus's 1547 words (vocab_size is set from
# the tokenizer). 32 positions: the longest sentence takes 12.
TRANSLATION_MODEL = ModelConfig(max_len=32, d_model=64, n_heads=4, n_layers=2, d_ff=256)


def translation_tokenizer() -> WordPieceTokenizer:
    """One id per word of either language: BERT's five special tokens, ".", then the words."""
    english, kelish = vocabulary()
    words = sorted(set(english) | set(kelish))
    specials = [WordPieceTokenizer.PAD, WordPieceTokenizer.UNK, WordPieceTokenizer.CLS,
                WordPieceTokenizer.SEP, WordPieceTokenizer.MASK]
    return WordPieceTokenizer([*specials, ".", *words])


class EncodedPair(NamedTuple):
    source: list[int]  # the English words, then [SEP]
    target: list[int]  # the Kelish words (no start or end token)


class TranslationData(NamedTuple):
    tokenizer: WordPieceTokenizer
    train_pairs: list[tuple[str, str]]  # (English, Kelish) sentences of the training stories
    heldout_pairs: list[tuple[str, str]]  # of the held-out stories
    train: list[EncodedPair]
    heldout: list[EncodedPair]


def encode_pairs(tokenizer, pairs) -> list[EncodedPair]:
    def ids(text):
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))

    return [EncodedPair(ids(source) + [tokenizer.sep_id], ids(target)) for source, target in pairs]


def translation_data(n_stories: int = 6000, n_heldout_stories: int = 300,
                     seed: int = 0) -> TranslationData:
    """The sentence pairs of `n_stories` training stories and `n_heldout_stories` more, drawn from
    one stream of stories (`grammar.generate_corpus`): the last ones are held out."""
    n_stories = positive_int("n_stories", n_stories)
    n_heldout_stories = positive_int("n_heldout_stories", n_heldout_stories)
    text = grammar.generate_corpus(n_stories + n_heldout_stories, seed)
    stories = [translate_story(story + "\n\n") for story in text.split("\n\n")[:-1]]
    train = [pair for story in stories[:n_stories] for pair in story]
    heldout = [pair for story in stories[n_stories:] for pair in story]
    tokenizer = translation_tokenizer()
    return TranslationData(tokenizer, train, heldout, encode_pairs(tokenizer, train),
                           encode_pairs(tokenizer, heldout))


def longest(pairs: list[EncodedPair]) -> int:
    """The positions a model needs: the longest source, or the longest target plus its start."""
    return max(max(len(p.source), len(p.target) + 1) for p in pairs)


def pad_sources(sources, pad_id) -> tuple[np.ndarray, np.ndarray]:
    """Sources of different lengths -> (ids, mask), both (B, S), padded on the right."""
    ids = np.full((len(sources), max(map(len, sources))), pad_id, dtype=np.int64)
    mask = np.zeros(ids.shape, dtype=np.int64)
    for row, source in enumerate(sources):
        ids[row, :len(source)], mask[row, :len(source)] = source, 1
    return ids, mask


def seq2seq_batch(pairs: list[EncodedPair], rows, tokenizer):
    """((source_ids, source_mask, target_ids), targets) of the pairs at `rows`: the forward's three
    inputs and the next-token targets, IGNORE_INDEX on the padding.

        target_ids  [CLS] w1 w2 ... wn          (B, T), T = n + 1 of the longest target
        targets      w1   w2 ... wn [SEP]       (B, T)
    """
    chosen = [pairs[row] for row in rows]
    source_ids, source_mask = pad_sources([p.source for p in chosen], tokenizer.pad_id)
    length = max(len(p.target) for p in chosen) + 1
    target_ids = np.full((len(chosen), length), tokenizer.pad_id, dtype=np.int64)
    targets = np.full((len(chosen), length), IGNORE_INDEX, dtype=np.int64)
    for row, pair in enumerate(chosen):
        n = len(pair.target)
        target_ids[row, :n + 1] = [tokenizer.cls_id, *pair.target]
        targets[row, :n + 1] = [*pair.target, tokenizer.sep_id]
    return (source_ids, source_mask, target_ids), targets


def batches_in_order(pairs: list[EncodedPair], batch_size: int, tokenizer):
    """Every pair once, in order, `batch_size` at a time (validation)."""
    for start in range(0, len(pairs), batch_size):
        yield seq2seq_batch(pairs, range(start, min(start + batch_size, len(pairs))), tokenizer)


# ---------------------------------------------------------------- sentences in, sentences out


def detokenize(tokenizer, ids) -> str:
    """Ids -> text, the period glued back to its word."""
    return tokenizer.decode(ids).replace(" .", ".")


def translate_ids(model, sources: list[list[int]], tokenizer, num_beams=1, length_penalty=1.0,
                  max_new_tokens=None, batch_size=256) -> list[list[int]]:
    """Target ids of each source (ids ending with [SEP]): greedy for num_beams = 1, else beam
    search, `batch_size` sources at a time."""
    max_new_tokens = max_new_tokens or model.config.max_len
    outputs = []
    for start in range(0, len(sources), batch_size):
        ids, mask = pad_sources(sources[start:start + batch_size], tokenizer.pad_id)
        if num_beams == 1:
            outputs += greedy_decode(model, ids, mask, tokenizer.cls_id, tokenizer.sep_id,
                                     max_new_tokens)
        else:
            outputs += beam_search(model, ids, mask, tokenizer.cls_id, tokenizer.sep_id,
                                   max_new_tokens, num_beams, length_penalty)
    return outputs


def translate(model, tokenizer, sentences: list[str], num_beams=1, length_penalty=1.0,
              max_new_tokens=None) -> list[str]:
    """English sentences -> Kelish sentences: `sentences` a list (or tuple) of non-empty str.
    (A bare str would be read as a list of characters, and an empty sentence, a lone end token,
    still gets a translation: the model always writes something.)"""
    if not isinstance(sentences, (list, tuple)):
        raise ValueError(f"sentences must be a list of str, got {type(sentences).__name__}")
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or not sentence.strip():
            raise ValueError(f"sentences must be non-empty strings, got "
                             f"{type(sentence).__name__} {sentence!r} at index {index}")
    sources = [p.source for p in encode_pairs(tokenizer, [(s, "") for s in sentences])]
    return [detokenize(tokenizer, ids) for ids in translate_ids(
        model, sources, tokenizer, num_beams, length_penalty, max_new_tokens)]


def scorer():
    """The `sacrebleu` module, or a ValueError saying how to install it."""
    try:
        import sacrebleu
    except ImportError:
        raise ValueError("BLEU and chrF need sacrebleu: pip install sacrebleu (minilm's dev extra "
                         "installs it)") from None
    return sacrebleu


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """exact_match (the fraction of sentences exactly right), and sacrebleu's corpus BLEU and chrF
    (0..100; BLEU counts matching word n-grams, n = 1..4, with a brevity penalty; chrF matching
    character n-grams, n = 1..6)."""
    sacrebleu = scorer()
    if len(hypotheses) != len(references) or not references:
        raise ValueError(f"need as many hypotheses as references (and at least one), got "
                         f"{len(hypotheses)} and {len(references)}")
    exact = float(np.mean([h == r for h, r in zip(hypotheses, references)]))
    return {"exact_match": exact,
            "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
            "sentences": len(references)}


def heldout_scores(model, tokenizer, pairs: list[EncodedPair], num_beams=1) -> dict[str, float]:
    """`translation_scores` of the model's translations of encoded pairs (their texts are read
    back from the ids)."""
    hypotheses = translate_ids(model, [p.source for p in pairs], tokenizer, num_beams)
    return translation_scores([detokenize(tokenizer, ids) for ids in hypotheses],
                              [detokenize(tokenizer, p.target) for p in pairs])

"""Lesson 05 (a real pretrained model): your implementations. Replace each
`raise NotImplementedError` with your code, then grade it:

    minilm check lessons/exercises/05_pretrained_model.py

Each function has the library's name and signature: `wordpiece_split` is
`minilm.tokenizers.wordpiece.wordpiece_split`, the other two are in `minilm.embeddings`.
"""

import numpy as np  # noqa: F401 - you will need it


def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##", max_chars=100):
    """Spell one word (a str) with pieces of `vocab` (a dict piece -> id; use `piece in vocab`),
    greedy longest-match-first, and return the list of pieces:

    - from the start of the word, take the longest prefix that is in vocab;
    - from where it ended, take the longest `continuation + letters` that is in vocab
      ("##ffa"), and so on to the end of the word;
    - if at some position not even one letter matches, return [unk_token] (the whole word is
      unknown: drop the pieces found so far); a word longer than `max_chars` is [unk_token] too.

    wordpiece_split("unaffable", minilm_vocab) == ["una", "##ffa", "##ble"]
    """
    raise NotImplementedError


def mean_pool(hidden, attention_mask):
    """The mean of each sequence's hidden states over its real tokens: hidden (B, T, C), float;
    attention_mask (B, T), 1 for a real token and 0 for padding (anywhere in the row). Returns
    (B, C). A row with no real token at all gives a vector of zeros (not NaN)."""
    raise NotImplementedError


def cosine_similarity_matrix(embeddings):
    """S[i, j] = cos(e_i, e_j) = e_i . e_j / (|e_i| |e_j|) for the rows of embeddings (N, C), none
    of them zero. Returns (N, N)."""
    raise NotImplementedError

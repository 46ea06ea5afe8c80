"""Reference solutions of lesson 05 (a real pretrained model). `minilm check` this file: all
pass."""

import numpy as np


def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##", max_chars=100):
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        # the longest piece that starts at `start`: try the whole rest first, then shorter ones
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else continuation + word[start:end]
            if piece in vocab:
                break
        else:  # no piece fits here, not even one character: the word cannot be spelled
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def mean_pool(hidden, attention_mask):
    mask = np.asarray(attention_mask, dtype=hidden.dtype)[:, :, None]  # (B, T, 1)
    total = (hidden * mask).sum(axis=1)  # (B, C): padding adds nothing
    count = np.maximum(mask.sum(axis=1), 1e-9)  # (B, 1): real tokens; never 0
    return total / count


def cosine_similarity_matrix(embeddings):
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)  # rows of length 1
    return unit @ unit.T

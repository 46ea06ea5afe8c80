"""Common mistakes of lesson 05, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import numpy as np

from minilm.check.framework import mistake


@mistake("mean pooling that counts the padding", breaks="ignores whatever the padding positions hold")
def mean_pool(hidden, attention_mask):
    return hidden.mean(axis=1)  # padding vectors are averaged in


@mistake("mean pooling that zeroes the padding but divides by the sequence length T",
         breaks="the mean of copies of one vector is that vector")
def mean_pool(hidden, attention_mask):  # noqa: F811 - each mistake is its own implementation
    mask = np.asarray(attention_mask, dtype=hidden.dtype)[:, :, None]
    return (hidden * mask).sum(axis=1) / hidden.shape[1]  # short sentences shrink toward 0


@mistake("mean pooling that divides by a count of 0 for an all-padding row",
         breaks="a sequence of padding only gives zeros, not NaN")
def mean_pool(hidden, attention_mask):  # noqa: F811
    mask = np.asarray(attention_mask, dtype=hidden.dtype)[:, :, None]
    return (hidden * mask).sum(axis=1) / mask.sum(axis=1)  # 0 / 0 = NaN


@mistake("cosine without normalising: plain dot products",
         breaks="ignores the length of each vector")
def cosine_similarity_matrix(embeddings):
    return embeddings @ embeddings.T  # long vectors look "more similar" to everything


@mistake("cosine normalising the columns instead of the rows",
         breaks="matches torch's cosine_similarity (float64)")
def cosine_similarity_matrix(embeddings):  # noqa: F811
    unit = embeddings / np.linalg.norm(embeddings, axis=0, keepdims=True)
    return unit @ unit.T


@mistake("WordPiece shortest-match-first: growing each piece from one letter",
         breaks="takes the longest piece that matches at each step")
def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##", max_chars=100):
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(start + 1, len(word) + 1):  # the shortest piece that is in vocab
            piece = word[start:end] if start == 0 else continuation + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


@mistake("WordPiece without the ## prefix on continuation pieces",
         breaks="matches Hugging Face's WordPiece")
def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##",  # noqa: F811
                    max_chars=100):
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            if word[start:end] in vocab:  # "ffa" looked up as a word start, not "##ffa"
                break
        else:
            return [unk_token]
        pieces.append(word[start:end])
        start = end
    return pieces


@mistake("WordPiece keeping the pieces found before an unknown letter",
         breaks="a word it cannot spell becomes [UNK] alone, never part-spelled")
def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##",  # noqa: F811
                    max_chars=100):
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else continuation + word[start:end]
            if piece in vocab:
                break
        else:
            return pieces + [unk_token]  # "una" "##ffa" [UNK]: a partial spelling
        pieces.append(piece)
        start = end
    return pieces


@mistake("WordPiece ignoring max_chars", breaks="a word longer than max_chars becomes [UNK]")
def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##",  # noqa: F811
                    max_chars=100):
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else continuation + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


def _split(word, vocab, unk_token, continuation, max_chars):
    """Greedy longest-match-first WordPiece done right."""
    if len(word) > max_chars:
        return [unk_token]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else continuation + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk_token]
        pieces.append(piece)
        start = end
    return pieces


@mistake("WordPiece with '##' written in, whatever `continuation` says",
         breaks="matches Hugging Face's WordPiece")
def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##",  # noqa: F811
                    max_chars=100):
    return _split(word, vocab, unk_token, "##", max_chars)


@mistake("WordPiece returning '[UNK]' written in, whatever `unk_token` says",
         breaks="matches Hugging Face's WordPiece")
def wordpiece_split(word, vocab, unk_token="[UNK]", continuation="##",  # noqa: F811
                    max_chars=100):
    return _split(word, vocab, "[UNK]", continuation, max_chars)

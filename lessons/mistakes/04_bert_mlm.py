"""Common mistakes of lesson 04, each a small wrong implementation and the property of
`minilm check` that catches it (tests/test_lessons.py proves every one is caught)."""

import numpy as np

from minilm.check.framework import mistake


def _fates(ids, rng, vocab_size, special_ids, mask_prob, mask_token_prob, random_token_prob):
    """What the correct masking decides (selected, becomes [MASK], becomes random, the ordinary
    ids): each mistake below changes one step of it."""
    selected = (rng.random(ids.shape) < mask_prob) & ~np.isin(ids, special_ids)
    u = rng.random(ids.shape)
    to_mask = selected & (u < mask_token_prob)
    to_random = selected & (u >= mask_token_prob) & (u < mask_token_prob + random_token_prob)
    return selected, to_mask, to_random, np.setdiff1d(np.arange(vocab_size), special_ids)


def _corrupt(ids, to_mask, to_random, mask_id, replacements):
    """The inputs: [MASK] where to_mask, the replacements where to_random, ids elsewhere."""
    inputs = ids.astype(np.int64)
    inputs[to_mask] = mask_id
    inputs[to_random] = replacements
    return inputs


@mistake("special tokens and padding can be selected", breaks="never selects special tokens or padding")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15, mask_token_prob=0.8,
                random_token_prob=0.1):
    ids = np.asarray(ids)
    selected = rng.random(ids.shape) < mask_prob  # [PAD], [CLS], [SEP] selected too
    u = rng.random(ids.shape)
    to_mask = selected & (u < mask_token_prob)
    to_random = selected & (u >= mask_token_prob) & (u < mask_token_prob + random_token_prob)
    ordinary_ids = np.setdiff1d(np.arange(vocab_size), special_ids)
    inputs = _corrupt(ids, to_mask, to_random, mask_id,
                      rng.choice(ordinary_ids, size=int(to_random.sum())))
    return inputs, np.where(selected, ids, -100)


@mistake("80/10/10 mixed up: 80% random tokens, 10% [MASK]",
         breaks="selected tokens become [MASK] with probability mask_token_prob")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15,  # noqa: F811
                mask_token_prob=0.8, random_token_prob=0.1):
    ids = np.asarray(ids)
    selected, to_random, to_mask, ordinary_ids = _fates(  # the two fates swapped
        ids, rng, vocab_size, special_ids, mask_prob, mask_token_prob, random_token_prob)
    inputs = _corrupt(ids, to_mask, to_random, mask_id,
                      rng.choice(ordinary_ids, size=int(to_random.sum())))
    return inputs, np.where(selected, ids, -100)


@mistake("labels are the original tokens everywhere, not -100 where nothing is predicted",
         breaks="labels are the original token where selected and -100 elsewhere")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15,  # noqa: F811
                mask_token_prob=0.8, random_token_prob=0.1):
    ids = np.asarray(ids)
    _, to_mask, to_random, ordinary_ids = _fates(
        ids, rng, vocab_size, special_ids, mask_prob, mask_token_prob, random_token_prob)
    inputs = _corrupt(ids, to_mask, to_random, mask_id,
                      rng.choice(ordinary_ids, size=int(to_random.sum())))
    return inputs, ids.astype(np.int64).copy()  # the loss then scores every token, mostly copies


@mistake("the unchanged 10% get no label (only changed tokens are predicted)",
         breaks="a selected token left unchanged still has its label")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15,  # noqa: F811
                mask_token_prob=0.8, random_token_prob=0.1):
    ids = np.asarray(ids)
    _, to_mask, to_random, ordinary_ids = _fates(
        ids, rng, vocab_size, special_ids, mask_prob, mask_token_prob, random_token_prob)
    inputs = _corrupt(ids, to_mask, to_random, mask_id,
                      rng.choice(ordinary_ids, size=int(to_random.sum())))
    return inputs, np.where(to_mask | to_random, ids, -100)


@mistake("random replacements drawn from the whole vocabulary, [MASK] and [PAD] included",
         breaks="random replacements are ordinary tokens, each equally likely")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15,  # noqa: F811
                mask_token_prob=0.8, random_token_prob=0.1):
    ids = np.asarray(ids)
    selected, to_mask, to_random, _ = _fates(
        ids, rng, vocab_size, special_ids, mask_prob, mask_token_prob, random_token_prob)
    inputs = _corrupt(ids, to_mask, to_random, mask_id,
                      rng.integers(0, vocab_size, size=int(to_random.sum())))  # specials too
    return inputs, np.where(selected, ids, -100)


@mistake("random numbers from np.random's global generator, not from rng",
         breaks="draws its randomness from rng alone (same seed, same masking)")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15,  # noqa: F811
                mask_token_prob=0.8, random_token_prob=0.1):
    ids = np.asarray(ids)
    selected, to_mask, to_random, ordinary_ids = _fates(
        ids, np.random.default_rng(), vocab_size, special_ids, mask_prob, mask_token_prob,
        random_token_prob)  # a fresh, unseeded generator: a different masking every call
    inputs = _corrupt(ids, to_mask, to_random, mask_id,
                      np.random.choice(ordinary_ids, size=int(to_random.sum())))
    return inputs, np.where(selected, ids, -100)


@mistake("random_token_prob taken as a share of the tokens not masked (a second draw): 2% random",
         breaks="the rest: a random token with probability random_token_prob, else unchanged")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15,  # noqa: F811
                mask_token_prob=0.8, random_token_prob=0.1):
    ids = np.asarray(ids)
    selected, to_mask, _, ordinary_ids = _fates(
        ids, rng, vocab_size, special_ids, mask_prob, mask_token_prob, random_token_prob)
    to_random = selected & ~to_mask & (rng.random(ids.shape) < random_token_prob)  # of the rest
    inputs = _corrupt(ids, to_mask, to_random, mask_id,
                      rng.choice(ordinary_ids, size=int(to_random.sum())))
    return inputs, np.where(selected, ids, -100)


@mistake("the masking written into ids itself (no copy): the caller's data is corrupted",
         breaks="labels are the original token where selected and -100 elsewhere")
def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15,  # noqa: F811
                mask_token_prob=0.8, random_token_prob=0.1):
    ids = np.asarray(ids)
    selected, to_mask, to_random, ordinary_ids = _fates(
        ids, rng, vocab_size, special_ids, mask_prob, mask_token_prob, random_token_prob)
    labels = np.where(selected, ids, -100)
    inputs = ids  # no copy: the next epoch masks an already-masked dataset
    inputs[to_mask] = mask_id
    inputs[to_random] = rng.choice(ordinary_ids, size=int(to_random.sum()))
    return inputs, labels

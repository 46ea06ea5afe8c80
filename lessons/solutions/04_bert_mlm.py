"""Reference solution of lesson 04 (BERT and masked language modelling). `minilm check` this
file: all pass."""

import numpy as np


def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15, mask_token_prob=0.8,
                random_token_prob=0.1):
    ids = np.asarray(ids)
    ordinary_ids = np.setdiff1d(np.arange(vocab_size), special_ids)  # what "random" draws from

    # 1. which tokens the model will have to predict: ordinary ones, each with mask_prob
    selected = (rng.random(ids.shape) < mask_prob) & ~np.isin(ids, special_ids)

    # 2. what each selected token becomes: one uniform number decides among the three fates
    u = rng.random(ids.shape)
    becomes_mask = selected & (u < mask_token_prob)
    becomes_random = selected & (u >= mask_token_prob) & (u < mask_token_prob + random_token_prob)

    inputs = ids.astype(np.int64)  # a copy: ids stays as it was
    inputs[becomes_mask] = mask_id
    inputs[becomes_random] = rng.choice(ordinary_ids, size=int(becomes_random.sum()))

    # 3. the loss looks only at selected positions; -100 tells cross-entropy to skip the rest
    labels = np.where(selected, ids, -100).astype(np.int64)
    return inputs, labels

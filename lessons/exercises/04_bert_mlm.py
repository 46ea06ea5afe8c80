"""Lesson 04 (BERT and masked language modelling): your implementation. Replace the
`raise NotImplementedError` with your code, then grade it:

    minilm check lessons/exercises/04_bert_mlm.py

The function has the library's name and signature (`minilm.data.mask_tokens`).
"""

import numpy as np  # noqa: F401 - you will need it


def mask_tokens(ids, rng, vocab_size, mask_id, special_ids, mask_prob=0.15, mask_token_prob=0.8,
                random_token_prob=0.1):
    """BERT's masking of `ids` (an integer array of any shape): returns (inputs, labels), two
    int64 arrays shaped like ids.

    - Select each ordinary token independently with probability `mask_prob`; a token whose id is
      in `special_ids` ([PAD], [CLS], [SEP], [MASK], ...) is never selected.
    - Each selected token becomes `mask_id` with probability `mask_token_prob`, a random ordinary
      token (uniform over the ids in [0, vocab_size) that are not special; it may be the same
      token again) with probability `random_token_prob`, and stays as it is otherwise.
    - labels: the original id where a token was selected, -100 everywhere else.

    Draw every random number from `rng` (a np.random.Generator), so the same seed gives the same
    masking. Do not change `ids` itself.
    """
    raise NotImplementedError

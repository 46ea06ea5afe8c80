"""What the tests and `minilm check` share: hypothesis strategies of inputs (`strategies`) and the
oracles they are judged by (`oracles`). Needs hypothesis (a dependency of minilm)."""

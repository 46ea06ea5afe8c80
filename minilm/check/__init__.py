"""`minilm check`: learners grade their own code with the project's own properties and oracles.

    from minilm.check import check
    print(check(globals()).table())          # in a notebook
    $ minilm check lessons/exercises/00_language_models.py
    $ minilm check --list

See `framework.py` (what a check is), `runner.py` (running them) and `exercises/` (each lesson's
exercises and properties).
"""

from minilm.check.runner import Report, check, listing

__all__ = ["Report", "check", "listing"]

"""Importers for published speech corpora: ``python -m data.prepare <corpus> --root DIR --out DIR``.

Each module reads its corpora's on-disk layouts and defines ``CORPORA`` (a list of
:class:`data.corpora.common.Corpus`); :mod:`data.corpora.writer` turns any of them into a shard set.
"""

from __future__ import annotations

import importlib

from data.corpora.common import Corpus

IMPORTER_MODULES = ("librispeech", "gigaspeech", "mustc", "spoken_squad", "tables", "kaldi")


def registry() -> dict[str, Corpus]:
    """Every importer by its command name, in the order of IMPORTER_MODULES."""
    corpora: dict[str, Corpus] = {}
    for module in IMPORTER_MODULES:
        for corpus in importlib.import_module(f"data.corpora.{module}").CORPORA:
            if corpus.name in corpora or corpus.name in ("manifest", "index"):
                raise ValueError(f"two importers are called {corpus.name!r}")
            corpora[corpus.name] = corpus
    return corpora

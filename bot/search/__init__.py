"""Search over the account's articles: ``Library.open(...)``, then ``answer`` a question.

Modules: :mod:`~bot.search.content` (loading files), :mod:`~bot.search.analyzer` (tokens),
:mod:`~bot.search.passages` (sentence windows), :mod:`~bot.search.lexical` (BM25 in tantivy),
:mod:`~bot.search.dense` (embeddings), :mod:`~bot.search.excerpt` (reply text),
:mod:`~bot.search.memo` (rankings of repeated questions), :mod:`~bot.search.library` (all of it
together), :mod:`~bot.search.commands` (CLI).
"""

from bot.search.library import Answer, Hit, Library

__all__ = ["Answer", "Hit", "Library"]

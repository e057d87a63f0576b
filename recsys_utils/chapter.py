"""Set-up shared by the chapters: figure style and how warnings are shown."""

from __future__ import annotations

import sys
import warnings

from recsys_utils.plots import use_book_style

_shown: set[str] = set()


def _show_inline(message, category, filename, lineno, file=None, line=None) -> None:
    text = f"{category.__name__}: {message}"
    if text not in _shown:  # the kernel resets warning filters; deduplicate here
        _shown.add(text)
        print(text, file=sys.stdout)


def setup_chapter() -> None:
    """Style the figures, and print warnings as one line of the chapter's output.

    The book treats anything on stderr as a build failure, so that a broken
    chapter cannot slip through. Warnings are part of the story (a metric
    that is undefined for a model, say), so they are printed to stdout
    instead, each distinct message once, where the reader meets them.
    """
    use_book_style()
    _shown.clear()
    warnings.showwarning = _show_inline

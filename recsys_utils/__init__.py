"""Shared code for the book: data, splits, models, training, metrics, plots.

Each concern has its own module; import from them directly, for example
``from recsys_utils.data import load_movielens_100k``.
"""

__version__ = "0.1.0"

"""edgeprune host side: data, models, training, pruning experiments and reports."""

__version__ = "0.1.0"

"""tradelab: a reinforcement-learning trading lab."""

__version__ = "0.1.0"

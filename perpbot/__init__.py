"""perpbot: run crypto perpetual-futures trading bots safely."""

__version__ = "0.1.0"

"""Leaving a position without paying the panic price: an exit executor with named policies.

plan.py      pure arithmetic: walking a book, depth within a band, the Almgren-Chriss
             impact-vs-timing-risk choice between slicing and one market order
venue.py     what the executor needs of the exchange (a run, a kill switch, a command)
executor.py  the policies (market, slices, passive-then-aggressive, adaptive) as loops of
             reduce-only child orders, each one an explained Decision
"""

from perpbot.exits.executor import POLICIES, ExitConfig, ExitResult, run_exit
from perpbot.exits.venue import ExitVenue

__all__ = ["POLICIES", "ExitConfig", "ExitResult", "ExitVenue", "run_exit"]

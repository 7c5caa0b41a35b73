"""Run reports: what a run did, as a listing, a figure and a table.

Everything here reads a run's folder (``perpbot.paths.runs_dir()/<run_id>/``) and nothing
else, tolerantly: a run that is still going, or that was killed or crashed mid-write, still
reports what is there and says what is missing or torn.

    runs.py     list runs and say how each ended; resolve "last" / an id prefix
    data.py     load one run folder into plain series
    tables.py   the summary numbers (PnL split, fills, slippage, rejections, drawdown)
    figure.py   one matplotlib figure (Agg) on a shared time axis
    html.py     one self-contained HTML file (figure embedded, tables inline)
"""

"""`perpbot risk stress`: where a liquidation cascade starts, how far it goes, and when it
reaches this account's positions (docs/stress.md).

    inputs.py    the scenario: positions, books, the crowd's open interest and leverage,
                 correlations, latency; loaded from a TOML/JSON file (assumptions noted)
    crowd.py     the crowd's liquidation clusters per symbol and price level
    depth.py     how far a market order of a given size moves the price (the book's depth,
                 with transient and permanent impact and a refilling book)
    cascade.py   the contagion graph and its propagation in time
    explain.py   the result as a dict (--json), a rich table and sentences a trader reads
    figure.py    the plot (matplotlib, optional extra ``perpbot[report]``)
    sources.py   inputs from elsewhere than the file (names, index weights, a run's positions);
                 reading them from an exchange is perpbot.app.stress_live
"""

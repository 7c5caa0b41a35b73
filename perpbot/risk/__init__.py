"""Risk: the bot's side of a venue's risk pipeline, every decision explained.

    pretrade.py, exposure.py, inputs.py  pure pre-trade checks (a table) and their inputs
    margin.py                            margin after a fill, liquidation price, brackets
    gate.py                              RiskGate, the pipeline layer that runs the checks
    index.py                             the index basket: median, MAD outliers, staleness
    monitor.py, watch.py                 post-trade detectors and the hub that feeds them
    state.py                             what the pieces share; publish.py: status extras
    plugin.py                            how it all attaches to `perpbot run`

See docs/risk.md. Importing this package imports nothing heavy.
"""

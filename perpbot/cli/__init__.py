"""Thin Typer commands. Each module imports only typer and light stdlib at import time:
`perpbot --help` and `perpbot kill` must never pay for ccxt, aiohttp or rich."""

"""Prometheus metrics of a run (``prometheus-client``): a bus subscriber for what happens
(requests, orders, 429/418, waits, decisions, alert deliveries) and a tick observer for
what is (positions, PnL, liquidation distance, weight used, kill state); served over HTTP
or written for node_exporter's textfile collector. Names: docs/operations.md."""

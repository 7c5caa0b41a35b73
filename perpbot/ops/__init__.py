"""Operating a bot for months: the run's identity for ops subscribers, the runs dir on disk
(compression, retention, the disk-space trip) and `perpbot doctor`."""

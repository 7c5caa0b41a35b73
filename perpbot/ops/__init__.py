"""Operating a bot for months: the ops subscribers' plugin (alerts, metrics) and the runs dir
on disk (retention, the disk-space trip). The run's identity is perpbot/identity.py, a run's
journal files perpbot/runfiles.py (both read by alerts, metrics and report too); `perpbot
doctor` is perpbot/app/doctor.py."""

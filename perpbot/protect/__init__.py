"""Exchange-side protection of the run's positions (``[protect]``): see docs/protect.md."""

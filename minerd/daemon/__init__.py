"""The composition root: builds the running daemon from settings and keeps it running.

app (signals, systemd, the top TaskGroup), assembly (devices from settings), components
(api, sinks, alerts, grid links around the site), supervisor (restarts with backoff),
systemd_notify (READY, WATCHDOG). Only minerd.cli imports this package.
"""

"""The embedded history store (``[history]``): sqlite in WAL mode.

- ``db``: opening a store (a corrupt or foreign file moved aside), its versioned migrations.
- ``writer``: the one thread that writes, one transaction per batch, and what failures cost.
- ``recorder``: snapshots turned into batches (transitions, endpoints, sessions, hourly roll-ups,
  the peers' current states), and the outbox of undelivered events.
- ``memory``: what a restart reads back (states, since, counters, the outbox).
- ``reading``: availability, outages and sessions, for ``wgtrack history``/``report`` and pages.
"""

"""Everything after Events: lifecycle, grouping, routing, silences, outbox, notifiers."""

"""The audit worker: delivers the price history to subscribers, in order, never skipping a change.

``python -m webapi.auditor`` runs it (see ``__main__``). The pieces:

* ``worker``       — the LISTEN loop: wakes on NOTIFY (or a poll timeout), reconnects forever,
                     stops on SIGTERM;
* ``horizon``      — up to which change id the history is final (ids commit out of order);
* ``subscribers``  — one thread per subscriber: reads changes after its durable cursor, delivers
                     them, retries, pauses a subscriber that keeps failing;
* ``sinks``        — where deliveries go: the log, signed webhooks, Apprise;
* ``alerts``       — alert rules (price drop, below target, back in stock, listed, delisted);
* ``events``       — the JSON and text of one delivered change;
* ``state``        — the delivery state in PostgreSQL (cursors, the delivery log, pauses);
* ``retry``        — which database errors are worth waiting out (the waits: tenacity);
* ``receiver``     — a reference webhook receiver (verifies signatures, records deliveries).
"""

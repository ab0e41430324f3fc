"""The demo: the whole product on this machine, against the local replica of the three shops.

    python -m demo              `make demo`: two syncs a day apart, then where to look
    python -m demo live         `make demo-up`: every Procfile process, the shops moving
    python -m demo screenshots  `make screenshots`: docs/screenshots/, from a demo of its own

The live shops cannot be reached from here, so the demo serves the project's replica of them
(tests/replica, small catalog) and changes it through its control API (`demo.shops`).
"""

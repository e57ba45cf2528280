"""Digest pushes that never harass: selection, throttle, ledger, RQ jobs, schedule, CLI.

- ``selection``  which new articles each subscriber gets, ranked by their interests
- ``throttle``   every rule checked and every send reserved atomically in Redis (Lua)
- ``runs``       a digest run: plan in chunks, decide, send, settle, sweep deferred, reconcile
- ``jobs``       the RQ jobs (queue ``push``)
- ``scheduler``  the loop that enqueues due runs once per slot
- ``timebase``   one virtual time for every process of a simulation
- ``receipts``   mass sends' MASSSENDJOBFINISH receipts matched to their runs
- ``report``     decisions by reason per day, mass receipts
- ``respect``    the scenario's figures: the delivery log checked against the subscribers' choices
- ``commands``   ``python -m bot push ...``
- ``scenario``   a synthetic month of subscribers through the real webhook, worker and fake API
"""

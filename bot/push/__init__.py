"""Digest pushes that never harass: selection, throttle, ledger, RQ jobs, schedule, CLI.

Production only: the month replayed through the bot with its respect checked is the simulator's
(``python -m bot sim scenario``).

- ``selection``  which new articles each subscriber gets, ranked by their interests
- ``throttle``   every rule checked and every send reserved atomically in Redis (Lua)
- ``runs``       a digest run: plan in chunks, decide, send, settle, sweep deferred, reconcile
- ``jobs``       the RQ jobs (queue ``push``)
- ``scheduler``  the loop that enqueues due runs once per slot
- ``receipts``   mass sends' MASSSENDJOBFINISH receipts matched to their runs
- ``report``     decisions by reason per day, mass receipts
- ``commands``   ``python -m bot push ...``
"""

"""A WeChat official-account bot that answers from its articles and pushes digests respectfully.

Map of the package (each module does one job; the README's "How the code is laid out" shows how
a message and a digest travel through them):

- ``services``  the composition root: settings -> config -> Redis -> library -> API client
- ``settings``  deployment values and secrets from the environment
- ``config``    operators' YAML under ``config/``, validated into frozen objects
- ``app``       the Flask app factory: the webhook and ``/healthz``
- ``wechat``    the protocol: messages, signatures, AES envelope, replies, API client, privileges
- ``inbound``   webhook, exactly-once delivery within the deadline, handlers, late and kept answers
- ``subscribers``  subscriber records, preferences, windows, interests, chat commands
- ``search``    content loading, text analysis, ranking, excerpts
- ``push``      digest selection, throttle scripts, ledger, channels, RQ jobs, scheduler, report
- ``state``     Redis: connection, key layout, embedded server, Lua, write batches, shared time
- ``worker``    the RQ queues and worker
- ``clock``     the one source of time, settable for tests and simulations
- ``cli``, ``runner``  ``python -m bot ...``; every process of ``make run`` together
- ``simulator`` WeChat played locally (never imported by the rest)
"""

"""A WeChat official-account bot that answers from its articles and pushes digests respectfully.

Map of the package (each module does one job):

- ``settings``  deployment values and secrets from the environment
- ``config``    operators' YAML under ``config/``, validated into frozen objects
- ``state``     the Redis connection (embedded by default) and every key name
- ``clock``     the one source of time, settable for tests and simulations
- ``message``   the protocol-free inbound message and reply values
- ``wire``      the WeChat wire format: signatures, AES envelopes, XML in and out
- ``webhook``   the ``/wechat`` blueprint: verify, decrypt, parse, dispatch, render
- ``delivery``  each delivery answered once, within the deadline (dedup, late replies)
- ``handlers``  message/event type -> behaviour; knows nothing of HTTP
- ``writes``    Redis writes recorded by handlers, sent with the answer as one script
- ``subscribers``  subscriber records, preferences, windows, interests, chat commands
- ``search``    content loading, text analysis, ranking, excerpts
- ``push``      digest selection, throttle scripts, ledger, RQ jobs, scheduler, scenario
- ``wechat_api``  the outbound WeChat API client (one shared access token)
- ``jobs``      the RQ queue and worker, the late-reply job
- ``simulator`` fake WeChat API, protocol driver, chat page
- ``runner``    ``python -m bot run``: every process, stopped together
- ``cli``       ``python -m bot ...``
"""

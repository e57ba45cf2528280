"""A WeChat official-account bot that answers from its articles and pushes digests respectfully.

Map of the package (each module does one job):

- ``settings``  deployment values and secrets from the environment
- ``config``    operators' YAML under ``config/``, validated into frozen objects
- ``state``     the Redis connection (embedded by default) and every key name
- ``clock``     the one source of time, settable for tests and simulations
- ``message``   the protocol-free inbound message and reply values
- ``wire``      the WeChat wire format: signatures, AES envelopes, XML in and out
- ``webhook``   the ``/wechat`` blueprint: verify, decrypt, parse, dispatch, render
- ``handlers``  message/event type -> behaviour; knows nothing of HTTP
- ``search``    content loading, text analysis, ranking, excerpts
- ``cli``       ``python -m bot ...``
"""

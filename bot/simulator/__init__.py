"""The local WeChat: a fake platform for trying the account and for every test and benchmark.

The bot never imports this package; it imports the bot (to play WeChat for its account).

- :mod:`~bot.simulator.platform`  one account as WeChat sees it: composes the rules below, and
  keeps privileges, customer-service windows, templates, menu, call and refusal counts
- :mod:`~bot.simulator.tokens`  access tokens (``/cgi-bin/token``, ``stable_token``)
- :mod:`~bot.simulator.tags`  user tags: create, list, delete, tagging, pages, their quotas
- :mod:`~bot.simulator.mass`  mass sends: who they reach, their quotas
- :mod:`~bot.simulator.subscriber`  what the platform knows of a subscriber, and their activities
- :mod:`~bot.simulator.bodies`  request bodies read or refused: messages, menu buttons
- :mod:`~bot.simulator.quotas`  daily quotas in the account's time zone
- :mod:`~bot.simulator.errors`  the platform's error codes and :func:`~bot.simulator.errors.refused`
- :mod:`~bot.simulator.deliveries`  the delivery log of accepted pushes (JSON lines, live feed)
- :mod:`~bot.simulator.api`  the fake WeChat API over HTTP (``python -m bot sim api``)
- :mod:`~bot.simulator.page`  the web chat page served by the same process
- :mod:`~bot.simulator.actions`  what a subscriber can do (chat lines and slash commands)
- :mod:`~bot.simulator.wire`  the platform's side of the wire: build, sign, encrypt, read replies
- :mod:`~bot.simulator.driver`  posts to the webhook as WeChat does (timeouts, re-deliveries)
- :mod:`~bot.simulator.chat`  the terminal chat (``python -m bot sim chat``)
- :mod:`~bot.simulator.server`  serves an app from a background thread (tests, benchmarks)
- :mod:`~bot.simulator.clock`  the scenario's virtual time, shared with every process via Redis
- :mod:`~bot.simulator.scenario`  a synthetic month of subscribers (``python -m bot sim scenario``)
- :mod:`~bot.simulator.respect`  the scenario's figures: the delivery log against their choices
- :mod:`~bot.simulator.commands`  the ``sim`` command group
"""

"""A subscriber's message on its way in, and the answer on its way out.

- ``webhook``   the ``/wechat`` blueprint: every refusal in order, decrypt, parse, render, seal
- ``delivery``  each delivery answered once, within WeChat's 5 s deadline
- ``kept``      late answers without the customer-service API: given to a retry or the next reply
- ``encoding``  a reply as cached in Redis (JSON, the late mark) and as plain text
- ``handlers``  message/event type -> behaviour; knows nothing of HTTP or XML
- ``late``      answers that missed the deadline, sent through the customer-service API (RQ job)
"""

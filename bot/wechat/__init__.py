"""The official-account protocol, both ways, with nothing of Flask or of the bot's logic.

- ``message``   the protocol-free values handlers see and return; the one XML parse of a body
- ``signing``   ``signature`` and ``msg_signature``, compared in constant time
- ``envelope``  the AES envelope of compatible and safe modes
- ``reply``     a reply value rendered as the passive-reply XML
- ``api``       the outbound API client: one shared token, one retry policy (``ApiError.fate``)
"""

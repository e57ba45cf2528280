"""The baseline of bench/webhook_load.py: a minimal signed WeRoBot echo bot.

``gunicorn bench.werobot_echo:app``. It checks the same signature as ours and echoes the text.
"""

import os

import werobot

robot = werobot.WeRoBot(token=os.environ.get("WECHAT_TOKEN", "devtoken"), enable_session=False)


@robot.text
def echo(message, session=None):  # noqa: ANN001, ANN201 - WeRoBot's handler signature
    """Echo the text back."""
    return message.content


app = robot.wsgi

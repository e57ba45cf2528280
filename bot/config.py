"""Operators' configuration: the YAML files under ``config/``, as validated, frozen objects.

One file per concern, each optional (a missing file means the defaults):

- ``account.yaml``  account name, type, time zone, welcome and help texts
- ``replies.yaml``  keyword replies (exact, contains, regex) that come before search
- ``menu.yaml``     the custom menu and what each CLICK key does
- ``push.yaml``     digest limits and schedules
- ``webhook.yaml``  deadline, replay window and body size of the webhook

A mistake stops start-up with a :class:`ConfigError` that names the file, the line, the key and
what was expected, e.g. ``config/menu.yaml, line 7, key button[0].name: at most 16 bytes``.
Flask's ``config.from_file`` is not used: it silently drops lowercase keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config file is missing something, has a typo, or breaks a platform limit."""

    def __init__(self, path: Path, problem: str, line: int | None = None, key: str = "") -> None:
        self.path, self.problem, self.line, self.key = path, problem, line, key
        where = str(path) + (f", line {line}" if line else "") + (f", key {key}" if key else "")
        super().__init__(f"{where}: {problem}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


# --- account.yaml -------------------------------------------------------------------------------


class Account(_Frozen):
    """Who the account is and what it says on its own."""

    name: str = Field("微信价值观", description="the account's display name")
    type: Literal["subscription", "service"] = Field(
        "subscription", description="subscription or service (decides mass-send quotas)"
    )
    verified: bool = Field(
        False,
        description="true once WeChat verified the account (微信认证); personal accounts cannot be",
    )
    timezone: str = Field("Asia/Shanghai", description="an IANA time zone such as Asia/Shanghai")
    welcome: str = Field(
        "欢迎关注！直接发问题给我，我会从文章里找出相关的段落。发送「帮助」查看用法。\n"
        "Welcome! Ask me anything and I will quote the passage that answers it. Send 'help'.",
        description="the text a new follower receives",
        min_length=1,
    )
    help: str = Field(
        "发问题给我，我从公众号的文章里找答案；「更多」看下一段；「退订」停止推送。\n"
        "Ask a question and I quote our articles; 'more' for the next passage; "
        "'stop' ends digests.",
        description="the answer to 帮助 / help",
        min_length=1,
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use a name like Asia/Shanghai") from exc
        return value


# --- replies.yaml -------------------------------------------------------------------------------


class KeywordReply(_Frozen):
    """One keyword rule: when a text message matches ``pattern``, answer ``reply``."""

    match: Literal["exact", "contains", "regex"] = Field(
        "exact", description="exact, contains or regex"
    )
    pattern: str = Field(min_length=1, description="the keyword or regular expression")
    reply: str = Field(min_length=1, description="the text to answer with")

    @model_validator(mode="after")
    def _regex_compiles(self) -> KeywordReply:
        if self.match == "regex":
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return self

    def matches(self, text: str) -> bool:
        """Whether ``text`` (already stripped) triggers this rule; case-insensitive."""
        if self.match == "exact":
            return text.casefold() == self.pattern.casefold()
        if self.match == "contains":
            return self.pattern.casefold() in text.casefold()
        return re.search(self.pattern, text, re.IGNORECASE) is not None


class Replies(_Frozen):
    """Keyword replies, tried in order before search."""

    replies: tuple[KeywordReply, ...] = ()


# --- menu.yaml ----------------------------------------------------------------------------------

MENU_TOP_BUTTONS = 3
MENU_SUB_BUTTONS = 5
MENU_TOP_NAME_BYTES = 16
MENU_SUB_NAME_BYTES = 60
MENU_KEY_BYTES = 128
MENU_URL_BYTES = 1024

MenuAction = Literal["help", "search", "latest", "settings", "text"]


class Button(_Frozen):
    """A menu button: a CLICK with a key and an action, a VIEW with a url, or a group."""

    name: str = Field(min_length=1, description="the label shown in the chat")
    type: Literal["click", "view", "group"] = Field(
        "click", description="click, view, or group (a top-level button with sub_buttons)"
    )
    key: str | None = Field(None, description="the EventKey of a click button")
    action: MenuAction | None = Field(
        None, description="what a click does: help, search, latest, settings or text"
    )
    query: str | None = Field(None, description="the question asked for action: search")
    text: str | None = Field(None, description="the answer for action: text")
    url: str | None = Field(None, description="the page a view button opens")
    sub_buttons: tuple[Button, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Button:
        if self.type == "group":
            if not self.sub_buttons:
                raise ValueError("a group needs sub_buttons")
            if len(self.sub_buttons) > MENU_SUB_BUTTONS:
                raise ValueError(f"at most {MENU_SUB_BUTTONS} sub_buttons (the platform's limit)")
        elif self.sub_buttons:
            raise ValueError("only type: group may have sub_buttons")
        if self.type == "click":
            if not self.key:
                raise ValueError("a click button needs a key")
            if _utf8_len(self.key) > MENU_KEY_BYTES:
                raise ValueError(f"key must be at most {MENU_KEY_BYTES} bytes")
            if self.action is None:
                raise ValueError("a click button needs an action")
            if self.action == "search" and not self.query:
                raise ValueError("action: search needs a query")
            if self.action == "text" and not self.text:
                raise ValueError("action: text needs a text")
        if self.type == "view":
            if not self.url or not re.match(r"https?://", self.url):
                raise ValueError("a view button needs an http(s) url")
            if _utf8_len(self.url) > MENU_URL_BYTES:
                raise ValueError(f"url must be at most {MENU_URL_BYTES} bytes")
        return self

    def to_api(self) -> dict[str, Any]:
        """The button as the menu/create API wants it."""
        if self.type == "group":
            return {"name": self.name, "sub_button": [b.to_api() for b in self.sub_buttons]}
        if self.type == "view":
            return {"type": "view", "name": self.name, "url": self.url}
        return {"type": "click", "name": self.name, "key": self.key}


class Menu(_Frozen):
    """The custom menu at the bottom of the chat."""

    buttons: tuple[Button, ...] = ()

    @model_validator(mode="after")
    def _platform_limits(self) -> Menu:
        if len(self.buttons) > MENU_TOP_BUTTONS:
            raise ValueError(f"at most {MENU_TOP_BUTTONS} top-level buttons (the platform's limit)")
        keys: set[str] = set()
        for top in self.buttons:
            if _utf8_len(top.name) > MENU_TOP_NAME_BYTES:
                raise ValueError(
                    f"top-level name {top.name!r} is over {MENU_TOP_NAME_BYTES} bytes "
                    "(5 Chinese characters)"
                )
            for sub in top.sub_buttons:
                if _utf8_len(sub.name) > MENU_SUB_NAME_BYTES:
                    raise ValueError(
                        f"sub-button name {sub.name!r} is over {MENU_SUB_NAME_BYTES} bytes"
                    )
            for button in (top, *top.sub_buttons):
                if button.key:
                    if button.key in keys:
                        raise ValueError(f"key {button.key!r} is used twice")
                    keys.add(button.key)
        return self

    def click(self, key: str) -> Button | None:
        """The click button whose key is ``key``."""
        for top in self.buttons:
            for button in (top, *top.sub_buttons):
                if button.type == "click" and button.key == key:
                    return button
        return None

    def to_api(self) -> dict[str, Any]:
        """The body of ``menu/create``."""
        return {"button": [b.to_api() for b in self.buttons]}


# --- push.yaml ----------------------------------------------------------------------------------


class Limits(_Frozen):
    """How often the account may reach one subscriber (PLATFORM.md section 6)."""

    per_day: int = Field(1, ge=0, le=4, description="digests per subscriber per rolling 24 h")
    per_week: int = Field(3, ge=0, le=10, description="digests per subscriber per rolling 7 days")
    account_daily: int = Field(
        100000, ge=0, description="digests the whole account may send per day"
    )
    quiet_start: int = Field(22, ge=0, le=23, description="hour quiet hours begin")
    quiet_end: int = Field(8, ge=0, le=23, description="hour quiet hours end")
    inactive_days: int = Field(
        90, ge=1, le=365, description="days of silence after which no digest is sent"
    )

    @model_validator(mode="after")
    def _week_covers_day(self) -> Limits:
        if self.per_week < self.per_day:
            raise ValueError("per_week must be at least per_day")
        return self


class Digest(_Frozen):
    """A scheduled digest: when, through which channel, how many items."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="a short lowercase id")
    schedule: str = Field(description="cron syntax in the account's time zone, e.g. '0 9 * * *'")
    channel: Literal["visit", "tag", "custom", "mass"] = Field(
        "visit", description="visit, tag, custom or mass (README: Which account do I have?)"
    )
    items: int = Field(3, ge=1, le=8, description="articles in one digest")

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression like '0 9 * * *'")
        return value


class Push(_Frozen):
    """Digest rules."""

    limits: Limits = Limits()
    digests: tuple[Digest, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> Push:
        names = [d.name for d in self.digests]
        if len(names) != len(set(names)):
            raise ValueError("digest names must be unique")
        return self

    def digest(self, name: str) -> Digest:
        """The digest called ``name``; ValueError naming the ones that exist."""
        found = next((d for d in self.digests if d.name == name), None)
        if found is None:
            names = ", ".join(d.name for d in self.digests) or "none"
            raise ValueError(f"no digest {name!r} in push.yaml (defined: {names})")
        return found


# --- webhook.yaml -------------------------------------------------------------------------------


class Webhook(_Frozen):
    """How the webhook treats traffic."""

    deadline_seconds: float = Field(
        4.0, gt=0, le=4.8, description="answer within this budget (WeChat waits 5 s)"
    )
    timestamp_window_seconds: int = Field(
        300, ge=30, description="refuse requests whose timestamp is further off than this"
    )
    max_body_bytes: int = Field(65536, ge=1024, le=1048576, description="larger bodies get 413")
    dedup_ttl_seconds: int = Field(
        300, ge=30, description="how long a delivery is remembered to answer retries"
    )


class Console(_Frozen):
    """The operator's console at ``/admin`` (on only when ``BOT_ADMIN_TOKEN`` is set)."""

    question_log_days: int = Field(
        30, ge=1, le=365,
        description="days an unanswered question (openid and text) is kept, then forgotten",
    )
    session_hours: int = Field(
        12, ge=1, le=168, description="hours a console login lasts (logging out ends it sooner)"
    )
    login_attempts: int = Field(
        10, ge=3, le=100, description="failed logins from one address before it must wait"
    )
    lockout_minutes: int = Field(
        15, ge=1, le=1440, description="how long an address that failed too often waits"
    )


# --- loading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """All of ``config/``."""

    account: Account
    replies: Replies
    menu: Menu
    push: Push
    webhook: Webhook
    console: Console
    folder: Path


_FILES: dict[str, tuple[str, type[_Frozen]]] = {
    "account": ("account.yaml", Account),
    "replies": ("replies.yaml", Replies),
    "menu": ("menu.yaml", Menu),
    "push": ("push.yaml", Push),
    "webhook": ("webhook.yaml", Webhook),
    "console": ("console.yaml", Console),
}

CONFIG_FILES = tuple(name for name, _ in _FILES.values())
"""The files of ``config/`` this module reads (search settings are :mod:`bot.search.options`')."""


def load_config(folder: Path) -> Config:
    """Load every file under ``folder``; raise :class:`ConfigError` on the first mistake."""
    parts = {attr: load_file(folder / name, model) for attr, (name, model) in _FILES.items()}
    config = Config(folder=folder, **parts)  # type: ignore[arg-type]
    _check_channels(config)
    return config


def _check_channels(config: Config) -> None:
    """Refuse a digest whose channel this kind of account may not use (48001 on every send)."""
    from bot.wechat import privileges

    account = config.account
    usable = privileges.channels_for(account.type, account.verified)
    for i, digest in enumerate(config.push.digests):
        if digest.channel in usable:
            continue
        path = config.folder / "push.yaml"
        root = read_yaml(path)[1] if path.exists() else None
        kind = privileges.describe(account.type, account.verified)
        raise ConfigError(
            path,
            f"channel {digest.channel!r} is not open to this account, a {kind} "
            f"(config/account.yaml type: {account.type}, verified: "
            f"{str(account.verified).lower()}): WeChat answers 48001 api unauthorized; use one "
            f"of: {', '.join(usable)}",
            line=line_of(root, ("digests", i, "channel")),
            key=f"digests[{i}].channel",
        )


def load_file(path: Path, model: type[_Frozen]) -> Any:
    """Load one YAML file into ``model``; a missing file gives the defaults."""
    if not path.exists():
        return model()
    data, root = read_yaml(path)
    if data is None:
        return model()
    if not isinstance(data, dict):
        raise ConfigError(path, "the file must be a mapping of keys to values", line=1)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        line = line_of(root, loc)
        problem = error["msg"].removeprefix("Value error, ")
        hint = _field_hint(model, loc)
        if hint and hint not in problem:
            problem += f" (expected: {hint})"
        raise ConfigError(path, problem, line=line, key=_key_text(loc)) from None


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Parse ``path`` as YAML, returning the data and its node tree (for line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            path, f"not valid YAML: {problem}", line=mark.line + 1 if mark else None
        ) from None
    return data, root


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the value at ``loc`` in a composed YAML tree (the nearest one found)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                break
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _key_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _field_hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The description of the field at ``loc``, to tell the operator what is expected."""
    hint = None
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            break
        info = fields[part]
        hint = info.description
        annotation = info.annotation
        args = getattr(annotation, "__args__", ()) or ()
        current = next((a for a in (annotation, *args) if hasattr(a, "model_fields")), None)
        if current is None:
            break
    return hint

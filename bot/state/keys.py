"""Every Redis key the bot uses, built in one place (:class:`Keys`); TTLs of transient data.

Key layout (every key is built by :class:`Keys`, nowhere else)::

    bot:seen:<openid>:<delivery-id>     reply cached for a re-delivered request (TTL: dedup window)
    bot:lock:<openid>:<delivery-id>     the delivery being answered right now (TTL: the deadline)
    bot:late:<openid>:<delivery-id>     an answer that missed the deadline, for the late job
    bot:late-sent:<openid>:<delivery-id>  set when that answer went to the API (sent once)
    bot:kept:<openid>                   answers that missed every delivery, for the next reply:
                                        delivery-id -> question and answer (hash, TTL 7 days)
    bot:url:<timestamp>:<nonce>         SHA-1 of the plaintext body first signed so (TTL 2 windows)
    bot:session:<openid>                the last question and how far "more" has gone (TTL 10 min)
    bot:user:<openid>                   subscriber record (hash)
    bot:gone:<openid>                   when they last unfollowed (TTL 1 day; see subscribers)
    bot:scene:<openid>                  QR scenes a subscriber came from (list, the last 20)
    bot:events:<kind>                   delivery receipts and other recorded events (capped list)
    bot:api:token                       the shared WeChat access token (TTL: expires_in - 5 min)
    bot:api:token-lock                  held by the one process refreshing the token (TTL 15 s)
    bot:api:token-forced                a stable token was force-refreshed (TTL 30 s, the least gap)
    bot:push:members                    subscribed openids, scored by follow time (zset)
    bot:push:interests:<openid>         interest terms learned from questions, weighted (zset)
    bot:push:logs                       openid -> digest sends of 7 days, "run time;..." (hash)
    bot:push:mass-logs                  openid -> mass sends that reached them in 31 days (hash)
    bot:push:cs-logs                    openid -> customer-service sends of 48 h (hash)
    bot:push:cursors                    openid -> "digest time;...": the last digest sent (hash)
    bot:push:logs-cursor                where pruning of each log hash goes on (hash of HSCAN)
    bot:push:pending:<openid>           digests deferred by quiet hours: run id -> due (hash)
    bot:push:due                        openids with deferred digests, scored by due time (zset)
    bot:push:account                    the account's groups of digest sends, 24 h sliding log
                                        (zset of "<run>|<time>", scored by their latest send)
    bot:push:account:counts             sends per group of that log (hash)
    bot:push:ledger:<run>               openid -> decision of one digest run (hash, 35 days)
    bot:push:plan:<run>                 planning progress and mass receipts of a run (hash, 35 days)
    bot:push:mass-day:<yyyy-mm-dd>      a subscription account's one mass send of that local day:
                                        the run and chunk that claimed it (TTL 26 h)
    bot:push:mass-msg:<msg_id>          the run a mass send belongs to, its receipt (hash, 35 days)
    bot:push:runs                       run ids, scored by their slot time (zset)
    bot:push:sending                    openid -> "run|time": a digest's API call in flight (hash)
    bot:push:tag:<digest>               a tag digest's WeChat tag id and last broadcast (hash)
    bot:push:tag-changes                openids who said stop since: untag them (set)
    bot:push:report:<yyyy-mm-dd>        decisions of a day: "<digest>|<reason>" -> count (hash)
    bot:tally:<yyyy-mm-dd>              what the bot did on a UTC day: questions, follows...
                                        -> count (hash, 40 days; no personal data)
    bot:asked:<openid>                  their questions the articles could not answer (zset of
                                        JSON by time, TTL: console.question_log_days)
    bot:asked-by                        openids with such questions, by the latest (zset, same TTL)
    bot:admin:session:<sha256>          a console login: its CSRF token (hash, TTL: session_hours)
    bot:admin:failures:<address>        failed console logins from an address (TTL: lockout)
    bot:durable                         counter: the marker each durable() waits to see replicated
    bot:clock:offset                    simulations only: seconds added to the server clock
    bot:content:generation              bumped by `content reload`: web processes rescan content/
"""

from __future__ import annotations

PREFIX = "bot"

SESSION_TTL = 600
"""Seconds a "more" session lives after the last question."""

EVENT_LOG_LENGTH = 1000
"""How many recorded events of one kind are kept."""

RUN_TTL = 35 * 86400
"""How long a digest run's ledger, plan and mass receipts are kept (the report reads them)."""


class Keys:
    """Every Redis key the bot uses, in one place."""

    @staticmethod
    def seen(openid: str, delivery: str) -> str:
        """The cached answer to one delivery, for retries."""
        return f"{PREFIX}:seen:{openid}:{delivery}"

    @staticmethod
    def lock(openid: str, delivery: str) -> str:
        """Held while one delivery is being answered."""
        return f"{PREFIX}:lock:{openid}:{delivery}"

    @staticmethod
    def late(openid: str, delivery: str) -> str:
        """An answer that missed the deadline, waiting for the customer-service job."""
        return f"{PREFIX}:late:{openid}:{delivery}"

    @staticmethod
    def late_sent(openid: str, delivery: str) -> str:
        """Set once a late answer has been handed to the API: it is never sent twice."""
        return f"{PREFIX}:late-sent:{openid}:{delivery}"

    @staticmethod
    def kept(openid: str) -> str:
        """Answers that missed every delivery (no customer-service API): for the next reply."""
        return f"{PREFIX}:kept:{openid}"

    @staticmethod
    def signed_url(timestamp: str, nonce: str) -> str:
        """The SHA-1 of the plaintext body first posted under a signed URL (replay guard)."""
        return f"{PREFIX}:url:{timestamp}:{nonce}"

    @staticmethod
    def content_generation() -> str:
        """A counter `content reload` bumps so every process rescans content/."""
        return f"{PREFIX}:content:generation"

    @staticmethod
    def session(openid: str) -> str:
        """A subscriber's last question, for "more"."""
        return f"{PREFIX}:session:{openid}"

    @staticmethod
    def user(openid: str) -> str:
        """A subscriber's record."""
        return f"{PREFIX}:user:{openid}"

    @staticmethod
    def gone(openid: str) -> str:
        """When a subscriber last unfollowed: writes on behalf of anything from before then give
        way (:func:`bot.subscribers.on_unfollow`)."""
        return f"{PREFIX}:gone:{openid}"

    @staticmethod
    def scenes(openid: str) -> str:
        """QR scenes a subscriber followed from."""
        return f"{PREFIX}:scene:{openid}"

    @staticmethod
    def events(kind: str) -> str:
        """A capped log of recorded platform events of one kind."""
        return f"{PREFIX}:events:{kind}"

    @staticmethod
    def api_token() -> str:
        """The one WeChat access token every process shares."""
        return f"{PREFIX}:api:token"

    @staticmethod
    def api_token_lock() -> str:
        """Held by the process that is fetching a new access token."""
        return f"{PREFIX}:api:token-lock"

    @staticmethod
    def api_token_forced() -> str:
        """Set for 30 s after a ``force_refresh`` of the stable token (the platform's gap)."""
        return f"{PREFIX}:api:token-forced"

    @staticmethod
    def push_members() -> str:
        """Subscribed openids (zset scored by follow time): the digests' audience."""
        return f"{PREFIX}:push:members"

    @staticmethod
    def push_interests(openid: str) -> str:
        """Interest terms learned from a subscriber's questions (zset of weights)."""
        return f"{PREFIX}:push:interests:{openid}"

    @staticmethod
    def push_logs() -> str:
        """openid -> that subscriber's digest sends of the last 7 days (the caps' sliding log).

        One hash for all, so a throttle call reads and writes a whole chunk's logs in one
        command each; the field's format is in ``bot/push/batch.lua``.
        """
        return f"{PREFIX}:push:logs"

    @staticmethod
    def push_cs_logs() -> str:
        """openid -> customer-service sends to that subscriber in 48 h (the window's quota).

        Digests and late replies; a hash of sliding logs like :meth:`push_logs`.
        """
        return f"{PREFIX}:push:cs-logs"

    @staticmethod
    def push_cursors() -> str:
        """openid -> per digest, the time of the last digest that may have reached them.

        A digest picks only articles published after it. Fields are ``digest time;digest
        time`` (the format of :meth:`push_logs`), so a throttle call writes a chunk's at once.
        """
        return f"{PREFIX}:push:cursors"

    @staticmethod
    def push_mass_logs() -> str:
        """openid -> mass sends that reached that subscriber in 31 days (4 a month, service)."""
        return f"{PREFIX}:push:mass-logs"

    @staticmethod
    def push_logs_cursor() -> str:
        """Where pruning of each sliding log hash goes on (HSCAN cursor per hash)."""
        return f"{PREFIX}:push:logs-cursor"

    @staticmethod
    def push_pending(openid: str) -> str:
        """Digests deferred for a subscriber by quiet hours: run id -> due time."""
        return f"{PREFIX}:push:pending:{openid}"

    @staticmethod
    def push_due() -> str:
        """Openids with deferred digests, scored by the earliest due time."""
        return f"{PREFIX}:push:due"

    @staticmethod
    def push_account() -> str:
        """The account's digest sends over the last 24 h (sliding log of groups).

        A group is the sends one throttle call reserved (``<run>|<time>``), scored by the time
        of its latest send; :meth:`push_account_counts` holds how many sends each group has.
        """
        return f"{PREFIX}:push:account"

    @staticmethod
    def push_account_counts() -> str:
        """How many sends each group of :meth:`push_account` holds."""
        return f"{PREFIX}:push:account:counts"

    @staticmethod
    def push_ledger(run: str) -> str:
        """openid -> decision for one digest run; reserved before any API call."""
        return f"{PREFIX}:push:ledger:{run}"

    @staticmethod
    def push_plan(run: str) -> str:
        """Planning progress of one digest run (chunks enqueued, done) and its mass receipts."""
        return f"{PREFIX}:push:plan:{run}"

    @staticmethod
    def push_mass_day(day: str) -> str:
        """Who took a subscription account's one mass send of the local day ``day``."""
        return f"{PREFIX}:push:mass-day:{day}"

    @staticmethod
    def push_mass_msg(msg_id: str) -> str:
        """The run a mass send (by its ``msg_id``) belongs to, and its MASSSENDJOBFINISH receipt."""
        return f"{PREFIX}:push:mass-msg:{msg_id}"

    @staticmethod
    def push_runs() -> str:
        """Digest run ids, scored by their slot time."""
        return f"{PREFIX}:push:runs"

    @staticmethod
    def push_sending() -> str:
        """openid -> ``run|time`` while a digest's API call to them is in flight (a stop waits)."""
        return f"{PREFIX}:push:sending"

    @staticmethod
    def push_tag(digest: str) -> str:
        """A tag digest's WeChat tag (``id``) and when its last broadcast was settled (``last``)."""
        return f"{PREFIX}:push:tag:{digest}"

    @staticmethod
    def push_tag_changes() -> str:
        """Openids who opted out since the tags were last brought in step (set)."""
        return f"{PREFIX}:push:tag-changes"

    @staticmethod
    def push_report(day: str) -> str:
        """Decisions of one UTC day, ``<digest>|<reason>`` -> count."""
        return f"{PREFIX}:push:report:{day}"

    @staticmethod
    def tally(day: str) -> str:
        """What the bot did on one UTC day (``yyyy-mm-dd``): name -> count."""
        return f"{PREFIX}:tally:{day}"

    @staticmethod
    def asked(openid: str) -> str:
        """A subscriber's questions the articles could not answer (zset of JSON, by time)."""
        return f"{PREFIX}:asked:{openid}"

    @staticmethod
    def asked_by() -> str:
        """Openids with unanswered questions, scored by the time of their latest one."""
        return f"{PREFIX}:asked-by"

    @staticmethod
    def admin_session(digest: str) -> str:
        """One console login, by the SHA-256 of its session id (the cookie holds the id)."""
        return f"{PREFIX}:admin:session:{digest}"

    @staticmethod
    def admin_failures(address: str) -> str:
        """Failed console logins from one client address, within the lockout."""
        return f"{PREFIX}:admin:failures:{address}"

    @staticmethod
    def durable() -> str:
        """A counter each :func:`bot.state.durable` increments: the write whose replication it
        waits for (every write before it is replicated before it)."""
        return f"{PREFIX}:durable"

    @staticmethod
    def clock_offset() -> str:
        """Seconds a simulation adds to the Redis server's clock (absent in production)."""
        return f"{PREFIX}:clock:offset"

    @staticmethod
    def personal(openid: str) -> list[str]:
        """Every key holding one subscriber's personal data (purged on unsubscribe)."""
        return [
            Keys.user(openid),
            Keys.session(openid),
            Keys.kept(openid),
            Keys.scenes(openid),
            Keys.push_interests(openid),
            Keys.push_pending(openid),
            Keys.asked(openid),
        ]

    @staticmethod
    def cached_answers(openid: str) -> list[str]:
        """SCAN patterns of the answers cached for one subscriber's deliveries (忘记我)."""
        escaped = "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in openid)
        return [f"{PREFIX}:{area}:{escaped}:*" for area in ("seen", "late", "late-sent")]

    @staticmethod
    def personal_fields() -> list[str]:
        """Hashes with one field of personal data per subscriber (the openid), also purged."""
        return [Keys.push_cs_logs(), Keys.push_cursors()]

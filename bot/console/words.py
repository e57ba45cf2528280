"""The console's words in Chinese and English, and what each digest decision means.

Templates call ``t("key")``; the language is the operator's choice (``?lang=zh|en``, kept in a
cookie), else their browser's first of the two.
"""

from __future__ import annotations

LANGUAGES = ("zh", "en")

WORDS: dict[str, tuple[str, str]] = {
    "title": ("运营后台", "Operator console"),
    "nav.overview": ("概览", "Overview"),
    "nav.questions": ("未答问题", "Unanswered"),
    "nav.subscriber": ("订阅者", "Subscriber"),
    "nav.content": ("内容", "Content"),
    "logout": ("退出登录", "Log out"),
    "login": ("登录", "Log in"),
    "login.token": ("管理令牌（BOT_ADMIN_TOKEN）", "Admin token (BOT_ADMIN_TOKEN)"),
    "login.wrong": ("令牌不对。", "That is not the token."),
    "login.locked": ("失败次数过多，请 {minutes} 分钟后再试。",
                     "Too many failed logins: try again in {minutes} min."),
    "login.out": ("已退出登录。", "You are logged out."),
    "login.expired": ("请先登录。", "Please log in."),
    "today": ("今天（UTC）", "Today (UTC)"),
    "days30": ("近 30 天（UTC 日）", "Last 30 days (UTC days)"),
    "chart.questions": ("提问与回答", "Questions and answers"),
    "chart.people": ("关注、取关与退订", "Follows, unfollows and opt-outs"),
    "chart.digests": ("推送：发送与拦截（按原因）", "Digests: sent and held back, by reason"),
    "chart.note": ("图表无法显示：请看旁边的表格。", "chart unavailable: see the table"),
    "day": ("日期", "Day"),
    "total": ("合计", "Total"),
    "tally.questions": ("提问", "questions"),
    "tally.answered": ("已回答", "answered"),
    "tally.unanswered": ("「没有相关内容」", "\u201cnothing on that\u201d"),
    "tally.more": ("「更多」", "\u201cmore\u201d"),
    "tally.more_empty": ("「更多」无果", "\u201cmore\u201d with nothing more"),
    "tally.follows": ("关注", "follows"),
    "tally.unfollows": ("取消关注", "unfollows"),
    "tally.optouts": ("退订", "opt-outs"),
    "tally.optins": ("恢复订阅", "opt-ins"),
    "tally.forgets": ("忘记我", "forget me"),
    "digests.sent": ("推送已发送", "digests sent"),
    "digests.held": ("推送被拦截", "digests held back"),
    "account": ("账号", "Account"),
    "account.kind": ("类型", "Kind"),
    "account.channels": ("可用的推送渠道", "Digest channels it may use"),
    "account.digests": ("已配置的推送", "Digests configured"),
    "account.none": ("（无）", "(none)"),
    "mass.receipts": ("群发回执", "Mass-send receipts"),
    "q.title": ("文章答不上的问题", "Questions our articles could not answer"),
    "q.lead": ("按意思归并、计数，最新在前：下一篇文章写什么，看这里。"
               "保留 {days} 天；取关或「忘记我」的订阅者的问题会被删除。",
               "Grouped when they ask the same thing, counted, newest first: write about these "
               "next. Kept {days} days; the questions of anyone who unfollows or says 忘记我 are "
               "deleted."),
    "q.question": ("问题（最新的说法）", "Question (latest wording)"),
    "q.times": ("次数", "Times"),
    "q.askers": ("人数", "People"),
    "q.latest": ("最近一次", "Latest"),
    "q.kind": ("情形", "What happened"),
    "q.kind.none": ("没有相关内容", "nothing on that"),
    "q.kind.more": ("「更多」没有更好的段落", "\u201cmore\u201d found nothing better"),
    "q.others": ("其他说法", "Also asked as"),
    "q.summary": ("共 {total} 个问题，归为 {groups} 组。", "{total} questions in {groups} groups."),
    "reasons.title": ("每种推送决定的含义", "What each digest decision means"),
    "q.empty": ("这段时间里没有答不上的问题。", "No unanswered questions in this period."),
    "q.days": ("时间范围", "Period"),
    "s.title": ("订阅者的故事", "A subscriber's story"),
    "s.lookup": ("输入 openid", "Type an openid"),
    "s.show": ("查看", "Show"),
    "s.pick": ("或选一位", "or pick one"),
    "s.latest_follows": ("最近关注", "Latest follows"),
    "s.latest_askers": ("最近有未答问题", "Latest with unanswered questions"),
    "s.unknown": ("没有这个订阅者的记录（未关注，或已取关 / 忘记我，数据已删除）。",
                  "No record of this subscriber (never followed, or unfollowed or said "
                  "忘记我: their data is deleted)."),
    "s.settings": ("设置与状态", "Settings and state"),
    "s.subscribed": ("关注中", "Following"),
    "s.since": ("关注时间", "Followed"),
    "s.digests": ("推送", "Digests"),
    "s.on": ("开", "on"),
    "s.off": ("关（已退订）", "off (said stop)"),
    "s.caps": ("频率上限", "Caps"),
    "s.caps.value": ("每天 {day} 篇，每周 {week} 篇", "{day} a day, {week} a week"),
    "s.quiet": ("免打扰", "Quiet hours"),
    "s.quiet.off": ("关", "off"),
    "s.tz": ("时区", "Time zone"),
    "s.lang": ("语言", "Language"),
    "s.last_msg": ("最后一条消息", "Last message"),
    "s.last_act": ("最后一次关注/扫码/点击", "Last follow, scan or click"),
    "s.last_seen": ("最后互动", "Last seen"),
    "s.window": ("48 小时客服窗口", "48 h customer-service window"),
    "s.window.open": ("开启，至 {until}", "open until {until}"),
    "s.window.closed": ("已关闭", "closed"),
    "s.interests": ("兴趣词", "Interests"),
    "s.sends": ("最近的推送（7 天）", "Digests of the last 7 days"),
    "s.pending": ("因免打扰延后的推送", "Digests deferred by quiet hours"),
    "s.decisions": ("每一次推送决定", "Every digest decision about them"),
    "s.decisions.none": ("35 天内没有关于此人的推送决定。",
                         "No digest decision about them in 35 days."),
    "s.run": ("推送", "Digest"),
    "s.slot": ("批次时间", "Slot"),
    "s.decision": ("决定", "Decision"),
    "s.when": ("时间", "When"),
    "s.why": ("原因", "Why"),
    "s.asked": ("答不上的问题", "Their unanswered questions"),
    "s.preview": ("现在推送的话会怎样？", "What would a digest decide now?"),
    "s.preview.go": ("预演（不发送）", "Preview (sends nothing)"),
    "s.preview.result": ("预演「{digest}」：{reason}", "Preview of \u201c{digest}\u201d: {reason}"),
    "s.preview.items": ("会收到的文章", "Articles it would carry"),
    "never": ("从未", "never"),
    "ago": ("{when}前", "{when} ago"),
    "c.title": ("文章", "Articles"),
    "c.path": ("文件", "File"),
    "c.article": ("标题", "Title"),
    "c.language": ("语言", "Language"),
    "c.passages": ("段落", "Passages"),
    "c.indexed": ("索引时间", "Indexed"),
    "c.problems": ("content check 报告的问题", "Problems that content check reports"),
    "c.no_problems": ("没有问题：所有文件都已加载。", "No problems: every file loads."),
    "c.summary": ("{articles} 篇文章，{passages} 个段落",
                  "{articles} articles, {passages} passages"),
    "c.reload": ("重新索引并通知所有进程", "Re-index and tell every process"),
    "c.reloaded": ("已重新索引：{articles} 篇文章，{passages} 个段落。",
                   "Re-indexed: {articles} articles, {passages} passages."),
    "c.confirm": ("现在重新索引全部内容？", "Re-index all content now?"),
    "redis.down": ("暂时读不到 Redis，请稍后再试（详情见日志）。",
                   "Redis cannot be reached right now; try again shortly (the log says why)."),
    "csrf": ("请求缺少有效的 CSRF 令牌，已拒绝。请刷新页面再试。",
             "Refused: the request lacks a valid CSRF token. Reload the page and try again."),
}

REASONS: dict[str, tuple[str, str]] = {
    "sent": ("已发送", "sent"),
    "unknown": ("结果未知：调用已发出，没有得到答复（不会重发）",
                "outcome unknown: the call went out and no answer came (never sent again)"),
    "failed-api": ("接口报错，未送达", "the API refused it; nothing reached them"),
    "skipped-unsubscribed": ("未关注", "not following"),
    "skipped-optout": ("已退订（说过「退订」）", "opted out (said stop / 退订)"),
    "skipped-inactive": ("沉默太久（超过 {inactive} 天没有互动）",
                         "silent too long (no interaction in {inactive} days)"),
    "skipped-irrelevant": ("没有与其兴趣相关的新文章", "nothing new that matches their interests"),
    "skipped-window": ("不在 48 小时客服窗口内（或窗口配额已用完）",
                       "outside the 48 h customer-service window (or its quota is used)"),
    "skipped-quiet": ("发送时正值其免打扰时段（群发不能延后）",
                      "in their quiet hours at send time (a broadcast cannot wait)"),
    "skipped-quota": ("本月群发次数已满（每月 4 次）", "the month's mass sends are used (4)"),
    "skipped-cap": ("达到个人频率上限（每天 {day} 篇 / 每周 {week} 篇）",
                    "their cap was reached ({day} a day / {week} a week)"),
    "skipped-account-cap": ("达到账号每日上限", "the account's daily cap was reached"),
    "deferred-quiet": ("免打扰，延后发送", "deferred by quiet hours"),
    "reserved": ("正在发送", "being sent"),
    "retry": ("等待重试", "waiting for a retry"),
}
"""Every decision of the throttle (:data:`bot.push.throttle.REASONS`, ``reserved``, ``retry``)."""

REASON_COLORS = {
    "sent": "#2e7d32", "unknown": "#f9a825", "failed-api": "#c62828",
    "deferred-quiet": "#1565c0", "skipped-unsubscribed": "#9e9e9e", "skipped-optout": "#6d4c41",
    "skipped-inactive": "#bdbdbd", "skipped-irrelevant": "#90a4ae", "skipped-window": "#8e24aa",
    "skipped-quiet": "#5c6bc0", "skipped-quota": "#ef6c00", "skipped-cap": "#ff8f00",
    "skipped-account-cap": "#d84315",
}


def word(key: str, lang: str, **values: object) -> str:
    """The text of ``key`` in ``lang``, with ``values`` filled in."""
    zh, en = WORDS[key]
    return (zh if lang == "zh" else en).format(**values)


def reason(name: str, lang: str, **values: object) -> str:
    """What the decision ``name`` means, in ``lang`` (its name when it is not known)."""
    found = REASONS.get(name)
    if found is None:
        return name
    text = found[0] if lang == "zh" else found[1]
    try:
        return text.format(**values)
    except KeyError:
        return text


def badge(name: str) -> str:
    """The CSS class of a decision's badge."""
    if name == "sent":
        return "ok"
    if name in ("failed-api", "unknown"):
        return "fail"
    if name.startswith("skipped-"):
        return "skip"
    return "wait"

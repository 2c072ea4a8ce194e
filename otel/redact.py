"""Secret redaction: the one set of rules for log lines, log fields, span attributes and events,
URLs and error reports (Sentry events).

What is masked (with ``***``):

* values of **sensitive keys**, structured (``extra=`` fields, mapping keys) or in text
  (``key=value``, ``key: value``, ``"key": "value"``, URL-encoded ``key%3Dvalue``). A key is
  sensitive when one of its words (split on punctuation and camelCase) is a secret word:
  ``key``, ``password``/``passwd``/``pwd``, ``secret``, ``token``, ``auth``/``authorization``,
  ``credential``, ``cookie``, ``signature``/``sig``, ``session``, ``dsn``… So ``api_key``,
  ``X-Api-Key``, ``private_key``, ``X-Amz-Credential``, ``X-Amz-Signature``, ``access_token``
  are; ``api_key_id`` or ``token_type`` (a key's *name*, not the secret) are not;
* ``Authorization``/``Proxy-Authorization`` header values (the scheme is kept:
  ``Digest ***``), and ``Bearer``/``Basic``/``Digest`` credentials in free text;
* URL user-info (``http://***@host``) and secrets in URL paths: chat webhook URLs (Slack
  ``/services/…``, Discord and generic ``/webhooks/…``, ``/hooks/…``, Teams
  ``/IncomingWebhook/…``) and Telegram ``bot<token>`` segments;
* PEM private keys, JWTs and well-known token formats (Trawl API keys and webhook secrets,
  Slack, GitHub, Stripe).

Ordinary data is left alone: only the secret part of a URL is masked, never the whole URL,
and ids (``job_…``, ``tsk_…``) are not secret-looking.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "MASK",
    "format_exception",
    "is_db_error",
    "is_db_error_type",
    "is_sensitive_key",
    "redact_db_message",
    "redact_exception",
    "redact_text",
    "redact_traceback",
    "redact_url",
    "redact_value",
]

MASK = "***"

# Words of a key name that make it sensitive.
_SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "privatekey",
        "secretkey",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "accesstoken",
        "refreshtoken",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "signature",
        "sig",
        "session",
        "sessionid",
        "jsessionid",
        "phpsessid",
        "dsn",
        "jwt",
        "otp",
    }
)
# A last word that makes the key name a secret's *label*, not the secret: api_key_id, token_type.
_LABEL_WORDS = frozenset(
    {"id", "ids", "name", "names", "type", "count", "prefix", "length", "kind", "version"}
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+")


def _words(key: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(_CAMEL.sub(r"\1_\2", key).lower()) if w]


@lru_cache(maxsize=4096)  # key names are mostly code constants: a small, hot set
def is_sensitive_key(key: str) -> bool:
    """Whether values under ``key`` are secrets (``api_key``, ``X-Amz-Credential``, ``pwd``…)."""
    words = _words(key)
    if not words:
        return False
    joined = "".join(words)
    if joined.endswith(("sessionid", "sessid")):
        return True
    if len(words) > 1 and words[-1] in _LABEL_WORDS:
        return False
    return joined in _SECRET_WORDS or any(w in _SECRET_WORDS for w in words)


# -------------------------------------------------------------------------------- text rules

_PEM = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s\"'<>`]+)")
# Authorization, Proxy-Authorization and Cookie header values (to the end of the line, or of
# the quoted string when the value is quoted)
_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")
_AUTH_HEADER = re.compile(
    r"(?i)(?<![\w\-])(?P<name>(?:proxy-)?authorization|(?:set-)?cookie)(?P<sep>[\"']?\s*[:=]\s*)"
    r"(?:(?P<q>[\"'])(?P<qval>(?:\\.|(?!(?P=q))[^\\\r\n])*)(?P=q)?|(?P<val>[^\r\n&]*))"
)
# SQL bind placeholders are not values: ``key_hash = $1`` stays as it is
_PLACEHOLDER = re.compile(r"^(?:\$\d+|\?|:\w+|%s|%\(\w+\)s)$")
_SCHEME = re.compile(r"^([A-Za-z][\w\-]*)\s+\S")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/\-]{4,}=*")
_DIGEST = re.compile(
    r"(?i)\b(digest)\s+[\w\-]+=(?:\"[^\"]*\"|[^\s,]+)(?:\s*,\s*[\w\-]+=(?:\"[^\"]*\"|[^\s,]+))*"
)
# key=value in text, query strings (also URL-encoded), JSON and headers. Only the key and the
# separator are consumed: the value is scanned too, so a secret nested in an encoded URL
# (``next=https%3A%2F%2Fh%2F%3Ftoken%3Dabc``) is found.
_KV = re.compile(
    r"(?:(?<=%[0-9A-Fa-f][0-9A-Fa-f])|(?<![\w.\-%]))(?P<key>[A-Za-z_][\w.\-]*)"
    r"(?P<sep>[\"']?\s*(?:=|:|%3[dD]|%253[dD])\s*)"
    r"(?=(?P<quote>[\"'])(?P<qval>[^\"']*)(?P=quote)"
    r"|(?P<val>(?:(?!%26|%2526)[^\s&\"',;)}\]<>])+))"
)
_TOKENS = (
    (re.compile(r"\btrawl_sk_[A-Za-z0-9_\-]{8,}"), "trawl_sk_" + MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]{8,}"), "whsec_" + MASK),
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9\-]{10,}"), MASK),
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"), MASK),
    (re.compile(r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"), MASK),
    # AWS access key ids (long-term AKIA, temporary ASIA): 20 upper-case letters and digits
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), MASK),
)

# URL paths: segments after one of these markers are webhook secrets when they look like one.
_HOOK_MARKERS = frozenset({"hooks", "hook", "webhook", "webhooks", "webhookb2", "incomingwebhook"})
# Slack's incoming webhooks, workflows and triggers: /services/T…/B…/<secret>
_SLACK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
_SLACK_MARKERS = frozenset({"services", "workflows", "triggers"})
_TELEGRAM_BOT = re.compile(r"^bot\d+:[A-Za-z0-9_\-]+$")
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9_\-.~%@]+$")


def _token_like(segment: str) -> bool:
    """A path segment that may be a secret: long, or mixing letters and digits. Plain words
    (``/hooks/useState``) and numeric ids (Discord's webhook id) are not."""
    if not _TOKEN_CHARS.match(segment) or segment.isdigit():
        return False
    if len(segment) >= 16:
        return True
    has_digit = any(c.isdigit() for c in segment)
    has_alpha = any(c.isalpha() for c in segment)
    return len(segment) >= 6 and has_digit and has_alpha


def _redact_url_parts(scheme: str, rest: str) -> str:
    authority, sep, tail = _split_authority(rest)
    if "@" in authority:
        authority = MASK + "@" + authority.rsplit("@", 1)[1]
    if not sep:
        return scheme + authority
    path, query_sep, after = _split_path(tail)
    host = authority.rsplit("@", 1)[-1].split(":", 1)[0].lower()
    markers = _HOOK_MARKERS | (_SLACK_MARKERS if host.endswith(_SLACK_HOSTS) else frozenset())
    segments = path.split("/")
    masking = False
    for i, segment in enumerate(segments):
        if _TELEGRAM_BOT.match(segment):
            segments[i] = "bot" + MASK
        elif masking and _token_like(segment):
            segments[i] = MASK
        elif segment.lower() in markers:
            masking = True
    return scheme + authority + sep + "/".join(segments) + query_sep + after


def _split_authority(rest: str) -> tuple[str, str, str]:
    for i, ch in enumerate(rest):
        if ch in "/?#":
            return rest[:i], ch, rest[i + 1 :]
    return rest, "", ""


def _split_path(tail: str) -> tuple[str, str, str]:
    for i, ch in enumerate(tail):
        if ch in "?#":
            return tail[:i], ch, tail[i + 1 :]
    return tail, "", ""


def _auth_header(m: re.Match[str]) -> str:
    value = m.group("qval") if m.group("q") else m.group("val")
    if value is None or not value.strip() or value.strip() == MASK:
        return m.group(0)
    scheme = _SCHEME.match(value) if m.group("name").lower().endswith("authorization") else None
    masked = f"{scheme.group(1)} {MASK}" if scheme else MASK
    quote = m.group("q") or ""
    return f"{m.group('name')}{m.group('sep')}{quote}{masked}{quote}"


def _mask_kv(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _KV.finditer(text):
        if m.start() < pos:
            continue  # inside a value masked already
        key = m.group("key")
        value = m.group("qval") if m.group("quote") else m.group("val")
        if (
            value == MASK
            or key.lower() in _HEADERS
            or _PLACEHOLDER.match(value)
            or not is_sensitive_key(key)
        ):
            continue
        out.append(text[pos : m.end()])
        if m.group("quote"):
            out.append(f"{m.group('quote')}{MASK}{m.group('quote')}")
            pos = m.end() + len(value) + 2
        else:
            out.append(MASK)
            pos = m.end() + len(value)
    out.append(text[pos:])
    return "".join(out)


def redact_text(text: str) -> str:
    """Mask every secret the rules above recognise in ``text``; the rest is kept as is."""
    if not text:
        return text
    try:
        text = _PEM.sub(MASK, text)
        text = _URL.sub(lambda m: _redact_url_parts(m.group(1), m.group(2)), text)
        text = _AUTH_HEADER.sub(_auth_header, text)
        text = _DIGEST.sub(rf"\1 {MASK}", text)
        text = _AUTH_SCHEME.sub(rf"\1 {MASK}", text)
        text = _mask_kv(text)
        for pattern, replacement in _TOKENS:
            text = pattern.sub(replacement, text)
        return text
    except Exception:  # never let a pathological string break logging or tracing
        return MASK


def redact_url(url: str) -> str:
    """The URL with user-info, secret query values and secret path segments masked (the one
    URL redaction of the code base: span ``url.full`` attributes, logs, error reports)."""
    return redact_text(url)


# Database errors echo values: asyncpg's "invalid input for query argument $1: 'value'",
# PostgreSQL's 'invalid input syntax for type integer: "value"', a "[parameters: …]" section
# when an engine does not hide them. On their message lines every quoted literal is masked.
_DB_MODULES = (
    "sqlalchemy",
    "asyncpg",
    "sqlite3",
    "aiosqlite",
    "psycopg",
    "psycopg2",
    "pymysql",
    "aiomysql",
)
_DB_LINE = re.compile(
    r"^(?:sqlalchemy|asyncpg|sqlite3|aiosqlite|psycopg2?|pymysql|aiomysql)[\w.]*: "
)
_LITERAL = re.compile(r"(?<!<class )'(?:[^'\\\n]|\\.|'')*'|\"(?:[^\"\\\n]|\\.)*\"")
_PARAMS = re.compile(r"\[parameters: [^\n]*")
_DETAIL_VALUE = re.compile(r"\)=\((?:[^()]|\([^()]*\))*\)")


def _literal(m: re.Match[str]) -> str:
    quote = m.group(0)[0]
    return f"{quote}{MASK}{quote}"


def redact_db_message(text: str) -> str:
    """A database error message with every quoted literal and bound parameter masked (the SQL
    itself, parameterised, is kept)."""
    out = []
    for line in text.split("\n"):
        if line.startswith("[SQL:") or line.startswith("(Background"):
            out.append(line)
        elif line.startswith("[parameters:"):
            out.append(_PARAMS.sub(f"[parameters: {MASK}]", line))
        else:
            line = _DETAIL_VALUE.sub(f")=({MASK})", line)
            out.append(_LITERAL.sub(_literal, line))
    return "\n".join(out)


def is_db_error(exc: BaseException) -> bool:
    """Whether ``exc`` or an exception in its chain comes from a database driver/SQLAlchemy."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(seen) < 16:
        seen.add(id(cur))
        if type(cur).__module__.split(".")[0] in _DB_MODULES:
            return True
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return False


def is_db_error_type(type_name: str) -> bool:
    """The same, from an ``exception.type`` / ``error.type`` string."""
    return type_name.split(".")[0] in _DB_MODULES


def redact_exception(exc: BaseException) -> str:
    """``str(exc)`` with secrets masked (never raises: a broken ``__str__`` gives the type)."""
    try:
        text = redact_text(str(exc))
        return redact_db_message(text) if is_db_error(exc) else text
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def redact_traceback(text: str) -> str:
    """A formatted traceback with secrets masked, and the message lines of database errors
    (and the lines that continue them) stripped of literals. Frame lines are kept."""
    try:
        text = redact_text(text)
        out = []
        in_db = False
        for line in text.split("\n"):
            if _DB_LINE.match(line):
                in_db = True
            elif not line or line[0].isspace():
                in_db = False
            out.append(redact_db_message(line) if in_db else line)
        return "\n".join(out)
    except Exception:
        return MASK


def format_exception(exc: BaseException) -> str:
    """The traceback of ``exc`` (with its chain), redacted."""
    try:
        raw = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:
        return f"<unprintable {type(exc).__name__}>"
    return redact_traceback(raw)


_PLAIN = (bool, int, float, type(None))


def redact_value(key: str, value: Any) -> Any:
    """Mask ``value`` entirely if ``key`` looks sensitive, else redact what is inside: strings,
    mappings and sequences recursively, anything else through its ``str()``."""
    if is_sensitive_key(key):
        return MASK
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {str(k): redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(key, v) for v in value]
    try:
        return redact_text(str(value))
    except Exception:
        return f"<unprintable {type(value).__name__}>"

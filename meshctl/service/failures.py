"""Failure classification: is a failed run worth a retry (transient) or not (permanent)?"""

from __future__ import annotations

import re
import traceback

TRANSIENT = "transient"


PERMANENT = "permanent"


# --- failure classification --------------------------------------------------------------
# Checked in this order: a permanent sign wins over a transient one (a refused login is also a
# psycopg2/Snowflake OperationalError-ish class), and anything unrecognized is permanent: a
# retry costs warehouse time and hides the error for minutes, so only known-transient retries.
_PERMANENT_MESSAGES = [
    r"incorrect username or password",
    r"password authentication failed",
    r"authentication failed",
    r"role \S+ does not exist",
    r"no pg_hba\.conf entry",
    r"jwt token is invalid",
    r"private key",
    r"permission denied",
    r"insufficient privileges",
    r"not authorized",
    r"sql compilation error",
    r"syntax error",
    r"parser error",
    r"binder error",
    r"catalog error",
    r"audit",
]


_PERMANENT_TYPES = {
    "ConfigError",
    "AuditError",
    "NodeAuditsErrors",
    "ProgrammingError",
    "ParserException",
    "BinderException",
    "CatalogException",
    "ConversionException",
    "ConstraintException",
    "SecretError",
    "LockLost",  # never retried: the lock is gone, so is the right to write
}


_TRANSIENT_MESSAGES = [
    r"timed? ?out",
    r"timeout",
    r"connection (reset|refused|aborted)",
    r"could not connect",
    r"could not translate host name",
    r"server closed the connection",
    r"connection to server .* failed",
    r"temporarily unavailable",
    r"too many connections",
    r"remaining connection slots",
    r"warehouse .*(busy|suspended|resuming|queued)",
    r"statement .* queued",
    r"could not set lock on file",
    r"conflicting lock",
    r"service unavailable",
    r"\b(429|502|503|504)\b",
    r"rate limit",
    r"network is unreachable",
    r"run process died",
    r"could not connect to snowflake backend",
]


_TRANSIENT_TYPES = {
    "TimeoutError",
    "ConnectionError",
    "ConnectionResetError",
    "ConnectionRefusedError",
    "BrokenPipeError",
    "OperationalError",
    "InterfaceError",
    "ReadTimeout",
    "ConnectTimeout",
    "ReadTimeoutError",
    "ConnectTimeoutError",
    "EndpointConnectionError",
    "TransactionConflictError",
}


def classify(error_types: list[str], message: str) -> str:
    """`transient` or `permanent`, from the exception class names (with bases, whole cause
    chain) and the messages of a failed run."""
    text = (message or "").lower()
    short = {name.rsplit(".", 1)[-1] for name in error_types}
    if short & _PERMANENT_TYPES or any(re.search(p, text) for p in _PERMANENT_MESSAGES):
        return PERMANENT
    if short & _TRANSIENT_TYPES or any(re.search(p, text) for p in _TRANSIENT_MESSAGES):
        return TRANSIENT
    return PERMANENT


def describe_exception(exc: BaseException) -> tuple[list[str], str, str]:
    """(class names incl. bases along the cause chain, joined messages, formatted traceback)."""
    types: list[str] = []
    messages: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for klass in type(current).__mro__:
            if klass in (object, BaseException, Exception):
                continue
            name = f"{klass.__module__}.{klass.__qualname__}"
            if name not in types:
                types.append(name)
        text = str(current).strip()
        if text and text not in messages:
            messages.append(text)
        current = current.__cause__ or current.__context__
    tb = "".join(traceback.format_exception(exc))
    # Root cause first: "Incorrect username or password" says more than "signal failed".
    return types, "\n".join(reversed(messages)) or type(exc).__name__, tb

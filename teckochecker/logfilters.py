"""Defence in depth for logs: mask anything shaped like a credential.

Secret values are never passed to a logger on purpose; this filter catches what a third-party
library might print at DEBUG (an Authorization header, a token header, an OpenAI key).
"""

import logging
import re

_PATTERNS = [
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:bearer|token)\s+)[^\s'\",}]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(x-storageapi-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[redacted]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "sk-[redacted]"),
    # A whole TeckoChecker API key; its 12-character prefix (tck_ and 8 more) stays readable.
    (re.compile(r"\btck_[A-Za-z0-9_-]{20,}"), "tck_[redacted]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

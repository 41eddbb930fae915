"""``privacy.mask_pii``: emails, phone numbers, card numbers and IBANs replaced by
``[EMAIL]``, ``[PHONE]``, ``[CARD]`` and ``[IBAN]`` in indexed text, logs and answers.

Card numbers must pass the Luhn check and IBANs the ISO 7064 mod-97 check, so order
numbers and hashes stay; a phone number needs 9 to 15 digits, or a leading ``+``,
with only spaces, hyphens and brackets between them (dates such as 2026-11-23 and
dotted numbers such as IP addresses stay).
"""

from __future__ import annotations

import logging
import re

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
CARD = re.compile(r"(?<![\d+-])\d(?:[ -]?\d){12,18}(?![\d-])")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ -]?)?(?:\(\d{1,4}\)[ -]?)?\d{2,5}(?:[ -]\d{2,5}){1,5}(?![\w-])"
                   r"|(?<![\w+])\+\d{8,15}(?!\w)")
HOLD_BACK = 64  # streamed text kept back until no PII could still be completing in it


def _luhn(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _iban(text: str) -> bool:
    s = text.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _card(match: re.Match) -> str:
    digits = re.sub(r"\D", "", match.group())
    return "[CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group()


def _phone(match: re.Match) -> str:
    text = match.group()
    if re.match(r"\d{4}-\d{2}-\d{2}\b", text):  # a date (and maybe a time), not a number
        return text
    digits = re.sub(r"\D", "", text)
    if 9 <= len(digits) <= 15 or (text.startswith("+") and len(digits) >= 8):
        return "[PHONE]"
    return text


def mask(text: str) -> str:
    """``text`` with every email, IBAN, card number and phone number replaced."""
    if not text:
        return text
    text = IBAN.sub(lambda m: "[IBAN]" if _iban(m.group()) else m.group(), text)
    text = EMAIL.sub("[EMAIL]", text)
    text = CARD.sub(_card, text)
    return PHONE.sub(_phone, text)


class StreamMasker:
    """Masks a token stream: PII can span tokens, so the newest ``HOLD_BACK`` characters
    wait until more text (or the end) shows whether they complete one."""

    def __init__(self) -> None:
        self.raw, self.sent = "", 0

    def feed(self, text: str) -> str:
        self.raw += text
        masked = mask(self.raw)
        safe = max(self.sent, len(masked) - HOLD_BACK)
        out, self.sent = masked[self.sent:safe], safe
        return out

    def close(self) -> str:
        masked = mask(self.raw)
        out, self.sent = masked[self.sent:], len(masked)
        return out


class MaskingFilter(logging.Filter):
    """Rewrites a record's message with ``mask`` before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage()), None
        return True


def mask_logs() -> None:
    """Install ``MaskingFilter`` on every handler of the root logger and Ray's loggers
    in this process (records reach handlers, not parent loggers' filters)."""
    for name in ("", "ray", "ray.serve", "ray.data"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())

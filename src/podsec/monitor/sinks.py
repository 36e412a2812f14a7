"""Where findings go besides stdout: syslog (for nagwad and the journal) and mail.

Syslog lines are written straight to the local syslog socket (``/dev/log`` by default, a
path of the caller's choice in tests) in the BSD format ``logger`` uses, facility ``user``:
``<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE``. The message keeps the original's shape
``<Level>: ...`` so nagwad's sed rules (data/monitor/nagwad/podsec.sed) still match. Long
messages are split into numbered parts instead of being cut at 1 KiB as the original's were.
Mail goes through SMTP (``localhost:25`` by default) with the standard library.
"""

from __future__ import annotations

import re

from podsec.errors import PodsecError, UsageError
from podsec.host.syslog import DEFAULT_SOCKET, Syslog
from podsec.i18n import _

__all__ = ["DEFAULT_SOCKET", "MailError", "Syslog", "send_mail"]

DEFAULT_SMTP = "localhost:25"


class MailError(PodsecError):
    """The mail could not be handed to the SMTP server."""


def parse_smtp(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, 25
    if not port.isdigit():
        raise MailError(_("invalid SMTP address {addr!r}: expected HOST:PORT").format(addr=address))
    return host.strip("[]") or "localhost", int(port)


_RECIPIENT = re.compile(
    r"^[A-Za-z0-9._%+-]{1,64}(@[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)?\Z"
)


def check_recipient(value: str, option: str = "-M") -> str:
    """A mail recipient: ``local`` or ``local@domain``, no spaces, lists or headers
    (``a;b`` and ``x\nBcc: y`` are refused with UsageError naming the option)."""
    if not _RECIPIENT.fullmatch(value) or ".." in value:
        raise UsageError(
            _("{option} {value!r}: not a mail address").format(option=option, value=value),
            hint=_("give one address: user or user@example.org"),
        )
    return value


def send_mail(
    to: str,
    subject: str,
    body: str,
    *,
    smtp: str = DEFAULT_SMTP,
    sender: str | None = None,
    timeout: float = 30.0,
) -> None:
    """Hand one plain-text mail to the SMTP server; raise :class:`MailError` on failure."""
    import smtplib
    import socket
    from email.message import EmailMessage

    host, port = parse_smtp(smtp)
    msg = EmailMessage()
    msg["From"] = sender or f"podsec@{socket.gethostname()}"
    msg["To"] = to
    msg["Subject"] = subject.replace("\n", " ")
    msg.set_content(body)
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as client:
            client.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise MailError(
            _("mail to {to} via {host}:{port} failed: {err}").format(
                to=to, host=host, port=port, err=exc
            )
        ) from exc

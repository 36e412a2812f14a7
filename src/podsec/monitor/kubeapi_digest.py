"""``watch-kubeapi -m``: mail a digest of ``forbidden.log``, then rotate it.

The records move to ``forbidden.log.sending`` under the state directory's lock, are mailed,
and only after the SMTP server accepted the mail become ``forbidden.log.1``: a failed mail
leaves them for the next run (sent together with what arrived meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from podsec.host.files import dir_lock
from podsec.i18n import _
from podsec.monitor import kubeapi_audit
from podsec.monitor.audit_events import Record


@dataclass(frozen=True)
class Digest:
    count: int
    subject: str
    body: str


def _digest(records: list[Record], garbage: int, host_name: str) -> Digest:
    by_user: dict[str, int] = {}
    for r in records:
        key = f"{r.user or '(anonymous)'} ({r.code})" + (" REVOKED" if r.revoked else "")
        by_user[key] = by_user.get(key, 0) + 1
    lines = [
        _("{count} forbidden or unauthenticated Kubernetes API request(s) on {host}:").format(
            count=len(records), host=host_name
        ),
        "",
    ]
    lines += [f"  {count:6d}  {user}" for user, count in sorted(by_user.items())]
    lines.append("")
    lines += [r.message().removeprefix("Critical: ") for r in records]
    if garbage:
        lines += ["", _("{count} unreadable line(s) in forbidden.log").format(count=garbage)]
    subject = _("podsec: {count} forbidden Kubernetes API request(s) on {host}").format(
        count=len(records), host=host_name
    )
    return Digest(len(records), subject, "\n".join(lines) + "\n")


def mail_digest(paths: kubeapi_audit.Paths, send: Callable[[str, str], None]) -> int:
    """Mail what forbidden.log holds and rotate it to ``forbidden.log.1`` only after ``send``
    (subject, body) returned. A failed mail leaves the records for the next run."""
    import socket

    pending = paths.state_dir / "forbidden.log.sending"
    with dir_lock(paths.state_dir):  # -d and -m coordinate (kubeapi_audit)
        if paths.forbidden.is_file() and paths.forbidden.stat().st_size:
            if pending.exists():  # a previous mail failed: send both together
                with pending.open("ab") as out:
                    out.write(paths.forbidden.read_bytes())
                paths.forbidden.unlink()
            else:
                paths.forbidden.replace(pending)
    if not pending.exists():
        return 0
    records, garbage = [], 0
    for line in pending.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            records.append(Record.from_json(line))
        except (ValueError, TypeError):
            garbage += 1
    if not records and not garbage:
        pending.unlink()
        return 0
    digest = _digest(records, garbage, socket.gethostname())
    send(digest.subject, digest.body)
    pending.replace(paths.state_dir / "forbidden.log.1")
    return digest.count

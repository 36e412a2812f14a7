"""``check-authz``: is the revocation webhook answering the API server?

Kubernetes treats an authorization webhook it cannot reach as "no opinion": RBAC decides alone
and revoked certificates work again (fail-open, :mod:`podsec.webhook.authz`). This plugin
makes that visible: it asks the webhook what the API server would — a SubjectAccessReview
over TLS, to the URL and with the pinned CA of the API server's own webhook kubeconfig — and
is CRITICAL when no valid answer comes (refused, timed out, a certificate the CA did not sign,
a malformed answer) or when the webhook cannot read ``revoked.json`` (``evaluationError``).
The metric is the answer's time in milliseconds (``-w``/``-c`` ranges apply to it); perfdata
``time``. UNKNOWN when the webhook is not set up on this host.
"""

from __future__ import annotations

from dataclasses import dataclass

from podsec.config import Settings
from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.monitor import plugin
from podsec.monitor.plugin import Perf, Report, State, Thresholds
from podsec.names import AUTHZ_KUBECONFIG

NAME = "AUTHZ"
TAG = "podsec-inotify-check-authz"


@dataclass(frozen=True)
class Result:
    url: str
    millis: float | None  # None: no answer
    error: str = ""  # why there is no valid answer
    evaluation_error: str = ""  # the webhook answers but cannot read its denylist


def probe(host: Host, timeout: float = 5.0) -> Result:
    from podsec.webhook import authz

    target = authz.read_kubeconfig(host.path(AUTHZ_KUBECONFIG), AUTHZ_KUBECONFIG)
    client = authz.Client(target, timeout=timeout)
    try:
        client.connect()
        answer = client.ask(authz.PROBE_USER)
    except PodsecError as exc:
        return Result(target.url, None, exc.message)
    finally:
        client.close()
    status = answer.status
    if status.get("allowed") or status.get("denied"):
        # the probe user is revoked by nobody: any verdict but no opinion is wrong
        return Result(
            target.url, answer.seconds * 1000, _("the webhook decided for an unknown user")
        )
    return Result(target.url, answer.seconds * 1000, "", str(status.get("evaluationError") or ""))


def report(result: Result, thresholds: Thresholds, log: plugin.Log | None = None) -> Report:
    if result.error or result.evaluation_error:
        text = result.error or _("the webhook cannot read its revocation list: {err}").format(
            err=result.evaluation_error
        )
        summary = _(
            "{url}: {text} — the API server lets revoked certificates through (fail-open)"
        ).format(url=result.url, text=text)
        if log is not None:
            log(2, f"Critical: {summary}")
        perf = (Perf("time", result.millis, "ms", min=0),)
        return Report(NAME, State.CRITICAL, summary, (), perf)
    millis = result.millis or 0.0
    state = thresholds.state(millis)
    warn = thresholds.warning.text if thresholds.warning else ""
    crit = thresholds.critical.text if thresholds.critical else ""
    summary = _("revocation webhook {url} answers in {ms:.1f} ms").format(url=result.url, ms=millis)
    return Report(NAME, state, summary, (), (Perf("time", round(millis, 3), "ms", warn, crit, 0),))


class AuthzCheck:
    """``check-authz`` for :func:`podsec.monitor.plugin.run`."""

    name = NAME
    tag = TAG
    needs_root = False  # reads the webhook kubeconfig: root or the node's account

    def probe(self, host: Host, settings: Settings, log: plugin.Log) -> Result:
        return probe(host)

    def summarise(
        self, result: Result, thresholds: Thresholds, verbosity: int, log: plugin.Log
    ) -> Report:
        return report(result, thresholds, log)

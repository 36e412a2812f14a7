"""``create-kubeconfig`` and ``renew``: a client certificate through the cluster's CSR API,
checked, then written into ``~USER/.kube/config``.

Everything that can be checked is checked before the CSR exists (user, ``~/.kube``, the
existing kubeconfig, the admin connection, the cluster CA, the API server); the kubeconfig
is written atomically only after the certificate was verified and shown to work, so a
failure leaves no half-written kubeconfig; a CSR a failed run could not delete (the API
server gone, the run killed) is removed by the next run for that user
(:func:`podsec.rbac.csr.remove_stale`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec import issued as issued_file
from podsec.errors import NotFoundError, PodsecError, UsageError, ValidationError
from podsec.host import files, ssh
from podsec.host.paths import Host
from podsec.host.run import run
from podsec.i18n import _
from podsec.kube import kubeconfig
from podsec.kube.client import Client
from podsec.kube.kubeconfig import Connection
from podsec.names import ADMIN_CONF, CLUSTER_CA, GROUP_K8S, ISSUED_FILE, U7S_USER
from podsec.progress import NULL_PROGRESS, Progress
from podsec.rbac import account, certs, csr, names

DEFAULT_GROUPS = (GROUP_K8S,)
DEFAULT_EXPIRATION = 365 * 86400
# a signer may round the lifetime or backdate notBefore by a few minutes
_EXPIRATION_SLACK = 3600


@dataclass(frozen=True)
class Issued:
    user: str
    groups: tuple[str, ...]
    path: str
    context: str
    cluster: str
    server: str
    serial: int
    not_after: dt.datetime
    requested_seconds: int | None
    lifetime_seconds: int
    changed: bool = True
    files: tuple[str, ...] = ()  # ~USER/.kube/USER.{key,csr,crt}, as the seed leaves them
    admin_config: str = ""  # the admin's kubeconfig that got the user's context ("" if none)

    @property
    def expiration_honoured(self) -> bool:
        if self.requested_seconds is None:
            return True
        return abs(self.lifetime_seconds - self.requested_seconds) <= _EXPIRATION_SLACK

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "groups": list(self.groups),
            "path": self.path,
            "context": self.context,
            "cluster": self.cluster,
            "server": self.server,
            "serial": str(self.serial),
            "notAfter": self.not_after.isoformat(),
            "requestedSeconds": self.requested_seconds,
            "lifetimeSeconds": self.lifetime_seconds,
            "expirationHonoured": self.expiration_honoured,
            "files": list(self.files),
            "adminConfig": self.admin_config,
        }


@dataclass(frozen=True)
class Renewal:
    user: str
    renewed: bool
    not_after: dt.datetime
    issued: Issued | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user": self.user,
            "renewed": self.renewed,
            "notAfter": self.not_after.isoformat(),
        }
        if self.issued is not None:
            out.update(self.issued.as_dict())
        return out


def split_user(spec: str) -> tuple[str, str]:
    """``USER[@REMOTE_USER]`` → (user, remote user; default u7s-admin for rootless)."""
    user, sep, remote = spec.partition("@")
    if sep and not remote:
        raise UsageError(_("empty remote user in {spec!r}").format(spec=spec))
    names.subject(user)
    return user, ssh.login(remote) if remote else U7S_USER


def cluster_ca(host: Host, admin: Connection, remote_user: str, work: Path) -> bytes:
    """The cluster CA: from the admin kubeconfig, else the node's PKI, else copied with scp
    from ``REMOTE_USER@<api host>`` as the original did."""
    if admin.ca_pem:
        return admin.ca_pem
    local = host.path(CLUSTER_CA)
    if local.is_file():
        return local.read_bytes()
    from urllib.parse import urlsplit

    server_host = urlsplit(admin.server).hostname or ""
    target = work / "ca.crt"
    source = ssh.scp_source(remote_user, server_host, CLUSTER_CA)
    run(["scp", "-q", "-o", "BatchMode=yes", "--", source, str(target)])
    data = target.read_bytes()
    target.unlink()
    return data


def _existing(kube: Path) -> kubeconfig.Config | None:
    path = kube / "config"
    if not path.exists() and not path.is_symlink():
        return None
    return kubeconfig.read(path)


def _issue_and_write(
    host: Host,
    api: Client,
    *,
    user: str,
    groups: Sequence[str],
    kube: Path,
    existing: kubeconfig.Config | None,
    ca_pem: bytes,
    key_type: str,
    expiration: int | None,
    timeout: float,
    progress: Progress,
    admin_context: bool = True,
) -> Issued:
    admin = api.conn
    key = certs.new_key(key_type)
    request = certs.csr_pem(key, user, groups)
    # one issuing run per host at a time: a CSR of the user that exists now is an earlier
    # run's (killed, or the API server went away before its delete) and is removed
    lock_dir = host.path(ISSUED_FILE).parent
    files.ensure_dir(lock_dir, mode=0o755)
    with files.dir_lock(lock_dir):
        csr.remove_stale(api, user)
        got = csr.issue(
            api, user, request, expiration=expiration, timeout=timeout, progress=progress
        )
    info = certs.check_issued(got.cert_pem, ca_pem, key, user, groups)
    key_pem = certs.key_pem(key)
    # prove the new identity authenticates before anything is written (the original's curl)
    probe = Connection(
        server=admin.server,
        cluster_name=admin.cluster_name,
        user_name=user,
        context_name="",
        ca_pem=ca_pem,
        cert_pem=got.cert_pem,
        key_pem=key_pem,
    )
    with Client(probe, timeout=api.timeout) as user_api:
        answer = user_api.get("/api")
    if not isinstance(answer, dict) or answer.get("kind") != "APIVersions":
        raise ValidationError(_("the API server did not accept the new certificate"))
    config = kubeconfig.merge_user(
        existing,
        user=user,
        cluster=admin.cluster_name,
        server=admin.server,
        ca_pem=ca_pem,
        cert_pem=got.cert_pem,
        key_pem=key_pem,
    )
    changed = account.write_config(host, user, kube, kubeconfig.dump(config))
    record(host, info, host.unroot(kube / "config"))
    # the seed leaves the key, the request and the certificate beside the kubeconfig
    written = []
    for suffix, data, mode in (
        ("key", key_pem, 0o600),
        ("csr", request, 0o644),
        ("crt", got.cert_pem, 0o644),
    ):
        # no .podsec-bak: an old private key must not linger beside the new one
        account.write_file(host, user, kube / f"{user}.{suffix}", data, mode, backup=False)
        written.append(host.unroot(kube / f"{user}.{suffix}"))
    admin_config = (
        add_to_admin(admin, user=user, ca_pem=ca_pem, cert_pem=got.cert_pem, key_pem=key_pem)
        if admin_context
        else ""
    )
    return Issued(
        user=user,
        groups=tuple(groups),
        path=host.unroot(kube / "config"),
        context=kubeconfig.context_name(user, admin.cluster_name),
        cluster=admin.cluster_name,
        server=admin.server,
        serial=info.serial,
        not_after=info.not_after,
        requested_seconds=expiration,
        lifetime_seconds=info.lifetime,
        changed=changed,
        files=tuple(written),
        admin_config=admin_config,
    )


def add_to_admin(
    admin: Connection, *, user: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> str:
    """As the seed: the user's credentials and context ``USER@CLUSTER`` in the admin's own
    kubeconfig (the file the admin connection came from), so the admin can try the user's
    rights with ``kubectl --context``; its current context is kept. Not into kubeadm's
    admin.conf, nor when the connection was merged from several files: "" then."""
    source = admin.source
    if not source or "," in source or Path(source) == Path(ADMIN_CONF):
        return ""
    path = Path(source)
    current = kubeconfig.read(path)
    merged = kubeconfig.merge_user(
        current,
        user=user,
        cluster=admin.cluster_name,
        server=admin.server,
        ca_pem=ca_pem,
        cert_pem=cert_pem,
        key_pem=key_pem,
        make_current=False,
    )
    if any(c.get("name") == admin.cluster_name for c in current.get("clusters") or []):
        merged["clusters"] = [  # the admin's own cluster entry stays as it was written
            {k: v for k, v in c.items() if k != "_dir"} for c in current.get("clusters") or []
        ]
    st = path.stat()
    files.atomic_write(path, kubeconfig.dump(merged), mode=0o600, owner=st.st_uid, group=st.st_gid)
    return str(path)


def record(host: Host, info: certs.CertInfo, kubeconfig_path: str) -> None:
    """Add the certificate to podsec's record of what it issued (``rbac certs``, the
    monitor's certificate check); 0644 like revoked.json: it names certificates only."""
    path = host.path(ISSUED_FILE)
    entry = issued_file.Issued(
        cn=info.cn,
        serial=str(info.serial),
        groups=info.groups,
        fingerprint_sha256=info.fingerprint,
        not_before=info.not_before.isoformat(),
        not_after=info.not_after.isoformat(),
        issued_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        kubeconfig=kubeconfig_path,
    )
    records = issued_file.added(issued_file.read(path, ISSUED_FILE), entry)
    files.ensure_dir(path.parent, mode=0o755)
    files.atomic_write(path, issued_file.dumps(records), mode=0o644, backup=False)


def create_kubeconfig(
    host: Host,
    admin: Connection,
    user_spec: str,
    groups: Sequence[str] = (),
    *,
    key_type: str = "rsa",
    expiration: int | None = DEFAULT_EXPIRATION,
    timeout: float = 60.0,
    api_timeout: float = 15.0,
    progress: Progress = NULL_PROGRESS,
    admin_context: bool = True,
) -> Issued:
    user, remote_user = split_user(user_spec)
    _entry, kube = account.kube_dir(host, user)
    groups = tuple(dict.fromkeys(groups or DEFAULT_GROUPS))
    for group in groups:
        names.subject(group)
    if key_type not in certs.KEY_TYPES:
        raise UsageError(_("unknown key type {kind!r} (rsa or ecdsa)").format(kind=key_type))
    existing = _existing(kube)
    with Client(admin, timeout=api_timeout) as api:
        api.get("/version")  # unreachable or unauthenticated: fail before creating anything
        ca_pem = cluster_ca(host, admin, remote_user, kube)
        return _issue_and_write(
            host,
            api,
            user=user,
            groups=groups,
            kube=kube,
            existing=existing,
            ca_pem=ca_pem,
            key_type=key_type,
            expiration=expiration,
            timeout=timeout,
            progress=progress,
            admin_context=admin_context,
        )


def current_cert(host: Host, user: str) -> tuple[certs.CertInfo, kubeconfig.Config, Path]:
    """The certificate podsec wrote for ``user`` (kubeconfig user entry ``USER``)."""
    _entry, kube = account.kube_dir(host, user)
    config = _existing(kube)
    if config is None:
        raise NotFoundError(
            _("{path} does not exist").format(path=host.unroot(kube / "config")),
            hint=_("run: podsec rbac create-kubeconfig {name}").format(name=user),
        )
    cert_pem, _key = kubeconfig.user_credentials(config, user)
    return certs.info(cert_pem), config, kube


def cert_groups(host: Host, user: str) -> tuple[str, ...]:
    """Groups in the user's certificate, when its kubeconfig is here and readable."""
    try:
        cert, _config, _kube = current_cert(host, user)
    except PodsecError:
        return ()
    return cert.groups


def renew(
    host: Host,
    admin: Connection,
    user: str,
    *,
    expiration: int | None = None,
    within: int | None = None,
    timeout: float = 60.0,
    api_timeout: float = 15.0,
    now: dt.datetime | None = None,
    progress: Progress = NULL_PROGRESS,
) -> Renewal:
    """Issue a fresh certificate with the same CN, groups and key type; with ``within``
    only when the current one expires within that many seconds (for a daily timer)."""
    old, config, kube = current_cert(host, user)
    moment = now or dt.datetime.now(dt.UTC)
    if within is not None and old.not_after - moment > dt.timedelta(seconds=within):
        return Renewal(user, False, old.not_after)
    lifetime = expiration or max(old.lifetime, certs.MIN_EXPIRATION)
    with Client(admin, timeout=api_timeout) as api:
        api.get("/version")
        ca_pem = cluster_ca(host, admin, U7S_USER, kube)
        issued = _issue_and_write(
            host,
            api,
            user=user,
            groups=old.groups,
            kube=kube,
            existing=config,
            ca_pem=ca_pem,
            key_type=old.key_type,
            expiration=lifetime,
            timeout=timeout,
            progress=progress,
        )
    return Renewal(user, True, issued.not_after, issued)

"""``enforce-revocation``: make an existing cluster's API server ask the revocation webhook.

On a control-plane host: the webhook's serving certificate and kubeconfig
(:func:`podsec.webhook.authz.install_config`), the system unit that runs it
(``podsec-rbac-authz.service``), and kube-apiserver's static pod manifest edited — Webhook
inserted before RBAC in ``--authorization-mode``, the webhook flags set, the kubeconfig
mounted read-only (only that file: the serving key stays with the webhook). The kubelet
restarts the API server when its manifest changes. The replaced manifest is kept in
``/var/lib/podsec/rbac/`` — not beside it, where the kubelet would run it as a second pod.

``podsec u7s kubeadm init`` sets up the same on a rootless node from its kubeadm
configuration instead (the node's supervisor runs the webhook).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import yaml

from podsec import readers
from podsec.errors import UsageError, ValidationError
from podsec.host import files, systemd
from podsec.host.paths import Host
from podsec.host.run import which
from podsec.i18n import _
from podsec.names import APISERVER_MANIFEST, AUTHZ_DIR, AUTHZ_KUBECONFIG
from podsec.webhook import authz

UNIT = "podsec-rbac-authz.service"
VOLUME = "podsec-authz"
BACKUP_DIR = "/var/lib/podsec/rbac"


@dataclass(frozen=True)
class Enforcement:
    kubeconfig: str
    url: str
    args: dict[str, str]
    manifest: str  # "" when no manifest was edited
    manifest_changed: bool
    backup: str
    unit: str
    started: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "kubeconfig": self.kubeconfig,
            "apiserverArgs": [f"--{k}={v}" for k, v in self.args.items()],
            "manifest": self.manifest,
            "manifestChanged": self.manifest_changed,
            "backup": self.backup,
            "unit": self.unit,
            "started": self.started,
        }


def _flags(command: list[str]) -> dict[str, int]:
    """Index of each ``--name[=value]`` item of a container command."""
    out: dict[str, int] = {}
    for i, item in enumerate(command):
        if isinstance(item, str) and item.startswith("--"):
            out[item[2:].split("=", 1)[0]] = i
    return out


def _apiserver_container(pod: Any, source: str) -> dict[str, Any]:
    containers = pod.get("spec", {}).get("containers") if isinstance(pod, dict) else None
    for c in containers or []:
        if isinstance(c, dict) and c.get("name") == "kube-apiserver":
            if not isinstance(c.get("command"), list):
                break
            return c
    raise ValidationError(
        _("{path}: no kube-apiserver container with a command list").format(path=source)
    )


def patch_manifest(text: str, source: str = APISERVER_MANIFEST) -> tuple[str, dict[str, str]]:
    """The manifest with the webhook's flags and the kubeconfig's volume; the flags set."""
    pod = readers.parse_yaml(text, source)
    container = _apiserver_container(pod, source)
    command: list[str] = container["command"]
    index = _flags(command)
    modes = "Node,RBAC"
    if "authorization-mode" in index:
        item = command[index["authorization-mode"]]
        modes = item.split("=", 1)[1] if "=" in item else modes
    if "AlwaysAllow" in modes.split(","):
        raise ValidationError(
            _("{path}: --authorization-mode={modes} allows everything before any webhook").format(
                path=source, modes=modes
            )
        )
    args = authz.apiserver_args(modes)
    for name, value in args.items():
        if name in index:
            command[index[name]] = f"--{name}={value}"
        else:
            command.append(f"--{name}={value}")
    mounts = container.setdefault("volumeMounts", [])
    if not any(isinstance(m, dict) and m.get("name") == VOLUME for m in mounts):
        mounts.append({"name": VOLUME, "mountPath": AUTHZ_KUBECONFIG, "readOnly": True})
    volumes = pod["spec"].setdefault("volumes", [])
    if not any(isinstance(v, dict) and v.get("name") == VOLUME for v in volumes):
        volumes.append({"name": VOLUME, "hostPath": {"path": AUTHZ_KUBECONFIG, "type": "File"}})
    return yaml.safe_dump(pod, sort_keys=False), args


def unit(address: str, port: int) -> systemd.Unit:
    """The webhook as a system service (root: it reads the serving key and revoked.json)."""
    argv = [
        sys.executable,
        "-m",
        "podsec.cli.daemon",
        "authz",
        f"address={address}",
        f"port={port}",
    ]
    return systemd.unit(
        UNIT,
        Unit=[
            ("Description", "podsec revocation authorization webhook"),
            ("Before", "kubelet.service"),
        ],
        Service=[
            ("Type", "simple"),
            ("ExecStart", " ".join(argv)),
            ("Restart", "always"),
            ("RestartSec", "1"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
        ],
        Install=[("WantedBy", "multi-user.target")],
    )


def enforce(
    host: Host,
    *,
    address: str = authz.ADDRESS,
    port: int = authz.PORT,
    manifest: str | None = APISERVER_MANIFEST,
    start: bool = True,
) -> Enforcement:
    """Set up the webhook on this host; edit ``manifest`` (None: leave the API server to the
    caller, who passes :attr:`Enforcement.args`)."""
    import ipaddress

    try:
        ipaddress.ip_address(address)
    except ValueError as exc:
        raise UsageError(_("--address {value}: not an IP address").format(value=address)) from exc
    manifest_path = host.path(manifest) if manifest else None
    text = ""
    if manifest_path is not None:
        read = files.read_text(manifest_path)
        if read is None:
            raise ValidationError(
                _("{path} does not exist: is this a kubeadm control-plane host?").format(
                    path=manifest
                ),
                hint=_("pass --no-manifest and give kube-apiserver the printed flags yourself"),
            )
        text = read
    # checked before anything is written: a manifest we cannot edit changes nothing
    patched, args = patch_manifest(text, manifest or "") if manifest_path else ("", {})
    if not args:
        args = authz.apiserver_args()
    authz.install_config(host.path(AUTHZ_DIR), address=address, port=port, uid=0, gid=0)
    u = unit(address, port)
    systemd.install(host, u)
    backup = ""
    changed = False
    if manifest_path is not None and patched != text:
        saved = host.path(f"{BACKUP_DIR}/{manifest_path.name}{files.BACKUP_SUFFIX}")
        files.ensure_dir(saved.parent, mode=0o755)
        files.atomic_write(saved, text, mode=0o600, backup=False)
        backup = host.unroot(saved)
        # the kubeconfig exists before the kubelet restarts the API server with it
        changed = files.atomic_write(manifest_path, patched, mode=0o600, backup=False)
    started = False
    if start and which("systemctl"):
        if not systemd.is_enabled(host, UNIT):
            systemd.enable(host, UNIT)
        started = systemd.start(host, UNIT)
    return Enforcement(
        kubeconfig=AUTHZ_KUBECONFIG,
        url=authz.url(address, port),
        args=args,
        manifest=manifest or "",
        manifest_changed=changed,
        backup=backup,
        unit=f"{systemd.SYSTEM_DIR}/{UNIT}",
        started=started,
    )

"""``watch-kubeapi --install``: the seed's audit policy and the apiserver's audit flags.

Installs ``/etc/kubernetes/audit/policy.yaml`` and wires the audit flags, the hostPath
volume and its mount into the kube-apiserver static-pod manifest (round-trip YAML, so the
administrator's comments and order survive). Idempotent.
"""

from __future__ import annotations

from typing import Any

from podsec import readers
from podsec.errors import NotFoundError, ValidationError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import APISERVER_MANIFEST, AUDIT_DIR, AUDIT_LOG, AUDIT_POLICY

AUDIT_FLAGS = {
    "--audit-policy-file": AUDIT_POLICY,
    "--audit-log-path": AUDIT_LOG,
    "--audit-log-format": "json",
    "--audit-log-maxsize": "500",
    "--audit-log-maxbackup": "3",
}


def audit_policy_text() -> str:
    from importlib import resources

    return resources.files("podsec").joinpath("data/audit-policy.yaml").read_text()


def install_audit(host: Host, manifest: str = APISERVER_MANIFEST) -> list[str]:
    """Install the seed's audit policy and wire the audit flags, volume and mount into the
    kube-apiserver static-pod manifest. Idempotent; returns the files changed."""
    # decide, then do: the manifest is read and patched before anything is written, so a
    # missing or invalid manifest leaves the node exactly as it was
    manifest_path = host.path(manifest)
    text = files.read_text(manifest_path)
    if text is None:
        raise NotFoundError(
            _("{path} does not exist").format(path=manifest_path),
            hint=_("run it on a control-plane node after kubeadm init"),
        )
    new_text = patch_manifest(text, str(manifest_path))
    changed = []
    policy_path = host.path(AUDIT_POLICY)
    if files.atomic_write(policy_path, audit_policy_text(), mode=0o600):
        changed.append(str(policy_path))
    if new_text != text and files.atomic_write(manifest_path, new_text, mode=0o600):
        changed.append(str(manifest_path))
    return changed


def patch_manifest(text: str, source: str = "kube-apiserver.yaml") -> str:
    """The manifest with the audit flags, hostPath volume and mount set (round-trip YAML)."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    readers.parse_yaml(text, source)  # bounded first: ruamel recurses once per level
    yaml = YAML()
    yaml.preserve_quotes = True
    try:
        doc = yaml.load(text)
    except YAMLError as exc:
        raise ValidationError(
            _("{path}: invalid YAML: {err}").format(path=source, err=" ".join(str(exc).split()))
        ) from exc
    try:
        _patch(doc)
    except (KeyError, TypeError, AttributeError, StopIteration) as exc:
        raise ValidationError(
            _("{path}: no kube-apiserver container found").format(path=source)
        ) from exc
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _patch(doc: Any) -> None:
    spec = doc["spec"]
    container = next(c for c in spec["containers"] if "kube-apiserver" in str(c.get("name", "")))
    command = container.setdefault("command", [])
    for flag, value in AUDIT_FLAGS.items():
        wanted = f"{flag}={value}"
        idx = [i for i, arg in enumerate(command) if str(arg).split("=", 1)[0] == flag]
        if idx:
            command[idx[0]] = wanted
            for extra in reversed(idx[1:]):
                del command[extra]
        else:
            command.append(wanted)
    mounts = container.setdefault("volumeMounts", [])
    if not any(m.get("mountPath") == AUDIT_DIR for m in mounts):
        mounts.append({"mountPath": AUDIT_DIR, "name": "audit"})
    volumes = spec.setdefault("volumes", [])
    if not any(v.get("name") == "audit" for v in volumes):
        volumes.append(
            {"hostPath": {"path": AUDIT_DIR, "type": "DirectoryOrCreate"}, "name": "audit"}
        )

"""Signature-carrying bundles (``save --with-signatures``).

Signatures sign the manifest digest, so a bundle keeps each image exactly as published
(manifest and compressed blobs byte for byte; skopeo ``--preserve-digests``) and adds, inside
the layout directory:

- ``podsec-signatures/<repo path>@sha256=<hex>/signature-N`` — the image's signatures in
  containers/image's ``dir:`` storage form, as skopeo with sigstore enabled writes them: first
  the lookaside (GPG simple signing) files skopeo fetched, then — where the image's scope
  requires ``sigstoreSigned`` — the sigstore signatures podsec read from the registry
  attachment ``sha256-<hex>.sig`` (``\\0sigstore-json\\n`` + JSON);
- ``podsec-keys/<name>`` — the public keys the policy used (GPG keys and sigstore PEM keys;
  a ``keyData`` key is carried as a file named by its hash);
- ``podsec-policy.json`` — a policy fragment: each scope's ``signedBy`` and ``sigstoreSigned``
  requirements with their keys at ``keyPath``/``keyPaths`` under /var/sigstore/keys, as podsec
  installs keys.

Every image is verified under this host's policy by the one engine (:mod:`podsec.trust.verify`)
before it goes in; an image whose scope requires a kind of signature it lacks, or whose
signatures do not verify, is refused. The loader never trusts the carried keys by itself:
``load --verify`` checks the signatures against the target node's own policy before anything
is pushed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from podsec.errors import NotFoundError, PodsecError, ValidationError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.registry import naming
from podsec.registry.oci import ImageEntry
from podsec.trust import attachments, reference, signature, sigstore, verify
from podsec.trust import policy as trust_policy
from podsec.trust import registries_d as rd

SIGS = "podsec-signatures"
KEYS = "podsec-keys"
POLICY = "podsec-policy.json"
KEY_DIR = "/var/sigstore/keys"
SIGNED = (trust_policy.SIGNED_BY, trust_policy.SIGSTORE_SIGNED)


@dataclass(frozen=True)
class Key:
    name: str  # the file name in podsec-keys/ and under /var/sigstore/keys
    data: bytes


def requirement_keys(host: Host, req: trust_policy.Requirement) -> list[Key]:
    """The public keys of a ``signedBy``/``sigstoreSigned`` requirement, named as the bundle
    carries them: a key file by its name, inline ``keyData``/``keyDatas`` by their hash."""
    out = []
    for path in req.keys:
        try:
            out.append(Key(Path(path).name, host.path(path).read_bytes()))
        except OSError as exc:
            raise PodsecError(
                _("open {path}: {err}").format(path=path, err=exc.strerror or exc)
            ) from exc
    datas = [req.key_data] if req.key_data is not None else []
    extra = dict(req.extra).get("keyDatas")
    if isinstance(extra, list):
        datas += [d for d in extra if isinstance(d, str)]
    suffix = ".pub" if req.type == trust_policy.SIGSTORE_SIGNED else ".gpg"
    for text in datas:
        data = base64.b64decode(text)
        out.append(Key(f"keydata-{hashlib.sha256(data).hexdigest()[:16]}{suffix}", data))
    return out


def fragment_requirement(req: trust_policy.Requirement, names: Sequence[str]) -> dict[str, Any]:
    """``req`` as the bundle's policy fragment states it: its keys under /var/sigstore/keys
    (one key: ``keyPath``, several: ``keyPaths`` — any one of them signs), its
    ``signedIdentity`` kept."""
    out: dict[str, Any] = {"type": req.type}
    if req.type == trust_policy.SIGNED_BY:
        out["keyType"] = req.key_type or trust_policy.GPG_KEYS
    paths = [f"{KEY_DIR}/{name}" for name in names]
    if len(paths) == 1:
        out["keyPath"] = paths[0]
    else:
        out["keyPaths"] = paths
    if req.signed_identity is not None:
        out["signedIdentity"] = req.signed_identity
    return out


def carried_signatures(lookaside: Sequence[bytes], attached: Sequence[bytes]) -> list[bytes]:
    """The bundle's ``signature-N`` blobs in containers/image's order: lookaside first, then
    attachments. A sigstore blob skopeo also copied from the attachment is kept once."""
    seen = [sigstore.from_blob(b) for b in attached]

    def copied(blob: bytes) -> bool:
        try:
            return signature.is_sigstore(blob) and sigstore.from_blob(blob) in seen
        except sigstore.SigstoreError:  # kept: the verdict names it
            return False

    return [*(b for b in lookaside if not copied(b)), *attached]


def _registry_source(domain: str, tls_verify: bool | None) -> attachments.Source:
    from podsec.registry.client import RegistryClient, base_url

    return RegistryClient(base_url(domain), tls_verify=tls_verify is not False)


class BundleBuilder:
    def __init__(
        self,
        host: Host,
        layout: Path,
        registries_d: Path | None,
        policy: Path | None,
        *,
        src_tls_verify: bool | None = None,
    ):
        self.host = host
        self.layout = layout
        if policy is None or not policy.is_file():
            raise NotFoundError(
                _("no policy at {path}: signatures cannot be verified").format(path=policy),
                hint=_("--with-signatures saves images verified under this host's policy"),
            )
        self.policy = trust_policy.load(policy)
        self.regd = rd.load_dir(registries_d) if registries_d is not None else rd.RegistriesD()
        self.src_tls_verify = src_tls_verify
        self.keys: dict[str, bytes] = {}  # bundle name → key
        self.scopes: dict[str, list[dict[str, Any]]] = {}  # policy scope → requirements

    def attachments_of(self, source: naming.Source, ref: str, digest: str) -> list[bytes]:
        """The sigstore attachments of a registry image (containers/image reads them where
        registries.d sets ``use-sigstore-attachments``; other transports have none)."""
        if source.transport != "docker://":
            return []
        if not rd.use_sigstore_attachments(self.regd, ref):
            raise ValidationError(
                _(
                    "the policy requires a sigstore signature for {image}, but registries.d "
                    "does not read its sigstore attachments"
                ).format(image=ref),
                hint=_("set use-sigstore-attachments: true for its scope in registries.d"),
            )
        parsed = reference.parse(ref)
        return attachments.read(
            _registry_source(parsed.domain, self.src_tls_verify), parsed.path, digest
        )

    def add(self, copy_dir: Path, entry: ImageEntry, source: naming.Source) -> ImageEntry:
        """Verify the image's signatures (skopeo's lookaside copies beside it, and its
        sigstore attachments where the scope requires them) and take them into the bundle."""
        lookaside = [
            p.read_bytes()
            for p in sorted(
                copy_dir.glob("signature-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1])
            )
        ]
        ref = naming.parse_reference(source.image)
        scope, reqs = trust_policy.scope_for(self.policy, "docker", str(ref))
        signed = [r for r in reqs if r.type in SIGNED]
        if not signed:
            raise ValidationError(
                _("the policy requires no signature for {image} (scope {scope})").format(
                    image=ref, scope=scope or "default"
                ),
                hint=_("--with-signatures carries signatures the policy checks"),
            )
        attached: list[bytes] = []
        if any(r.type == trust_policy.SIGSTORE_SIGNED for r in signed):
            attached = self.attachments_of(source, str(ref), entry.digest)
        blobs = carried_signatures(lookaside, attached)
        if not blobs:
            raise ValidationError(
                _("{image} has no signature: only signed images can be bundled").format(
                    image=source.skopeo
                )
            )
        # the same decision the target node will make (trust.verify, one engine)
        verdict = verify.evaluate(self.host, self.policy, str(ref), entry.digest, blobs)
        if not verdict.accepted:
            raise ValidationError(
                _("no signature of {image} verifies with the policy's keys: {reason}").format(
                    image=ref, reason=verdict.reason
                )
            )
        paths = self._write_signatures(ref.repo, entry.digest, blobs)
        fragment = self.scopes.setdefault(scope, [])
        for req in signed:
            names = []
            for key in requirement_keys(self.host, req):
                if self.keys.get(key.name, key.data) != key.data:
                    raise ValidationError(
                        _("two different keys are named {name}").format(name=key.name)
                    )
                self.keys[key.name] = key.data
                names.append(key.name)
            stated = fragment_requirement(req, names)
            if stated not in fragment:
                fragment.append(stated)
        return replace(entry, signatures=tuple(paths))

    def _write_signatures(self, repo: str, digest: str, blobs: Sequence[bytes]) -> list[str]:
        folder = f"{SIGS}/{signature.sig_dir_name(repo, digest)}"
        (self.layout / folder).mkdir(parents=True, exist_ok=True)
        paths = []
        for index, blob in enumerate(blobs, 1):
            rel = f"{folder}/signature-{index}"
            (self.layout / rel).write_bytes(blob)
            paths.append(rel)
        return paths

    def fragment(self) -> dict[str, Any]:
        return {
            "default": [{"type": "reject"}],
            "transports": {"docker": dict(sorted(self.scopes.items()))},
        }

    def finish(self) -> dict[str, Any]:
        (self.layout / KEYS).mkdir(exist_ok=True)
        for name, data in sorted(self.keys.items()):
            (self.layout / KEYS / name).write_bytes(data)
        (self.layout / POLICY).write_text(json.dumps(self.fragment(), indent=4) + "\n")
        return {"keys": tuple(f"{KEYS}/{n}" for n in sorted(self.keys)), "policy": POLICY}

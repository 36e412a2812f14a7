"""Signature-carrying bundles (``save --with-signatures``).

Signatures sign the manifest digest, so a bundle keeps each image exactly as published
(manifest and compressed blobs byte for byte; skopeo ``--preserve-digests``) and adds, inside
the layout directory:

- ``podsec-signatures/<repo path>@sha256=<hex>/signature-N`` — the lookaside files as skopeo
  fetched and verified them under this host's policy while copying;
- ``podsec-keys/<name>`` — the public keys the policy used;
- ``podsec-policy.json`` — a policy fragment binding those keys to the images' scopes
  (``keyPath`` under /var/sigstore/keys, as podsec installs keys).

The loader never trusts these keys by itself: ``load --verify`` checks the signatures
against the target node's own policy before anything is pushed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from podsec.errors import NotFoundError, ValidationError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.registry import naming
from podsec.registry.oci import ImageEntry
from podsec.trust import policy as trust_policy
from podsec.trust import signature, verify

SIGS = "podsec-signatures"
KEYS = "podsec-keys"
POLICY = "podsec-policy.json"
KEY_DIR = "/var/sigstore/keys"


class BundleBuilder:
    def __init__(self, host: Host, layout: Path, registries_d: Path | None, policy: Path | None):
        self.host = host
        self.layout = layout
        if policy is None or not policy.is_file():
            raise NotFoundError(
                _("no policy at {path}: signatures cannot be verified").format(path=policy),
                hint=_("--with-signatures saves images verified under this host's policy"),
            )
        self.policy = trust_policy.load(policy)
        self.keys: dict[str, Path] = {}  # bundle name → host key file
        self.scopes: dict[str, list[str]] = {}  # policy scope → bundle key names

    def add(self, copy_dir: Path, entry: ImageEntry, source: naming.Source) -> ImageEntry:
        """Take the signatures skopeo copied next to the image into the bundle."""
        sig_files = sorted(
            copy_dir.glob("signature-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1])
        )
        if not sig_files:
            raise ValidationError(
                _("{image} has no signature: only signed images can be bundled").format(
                    image=source.skopeo
                )
            )
        ref = naming.parse_reference(source.image)
        scope, reqs = trust_policy.scope_for(self.policy, "docker", str(ref))
        key_files = [k for r in reqs if r.type == trust_policy.SIGNED_BY for k in r.keys]
        if not key_files:
            raise ValidationError(
                _("the policy requires no signature for {image} (scope {scope})").format(
                    image=ref, scope=scope or "default"
                ),
                hint=_("--with-signatures carries signatures the policy checks"),
            )
        host_keys = [self.host.path(k) for k in key_files]
        # the same decision the target node will make (trust.verify, one engine)
        verdict = verify.evaluate(
            self.host,
            self.policy,
            str(ref),
            entry.digest,
            [sig.read_bytes() for sig in sig_files],
        )
        if not verdict.accepted:
            raise ValidationError(
                _("no signature of {image} verifies with the policy's keys: {reason}").format(
                    image=ref, reason=verdict.reason
                )
            )
        folder = f"{SIGS}/{signature.sig_dir_name(ref.repo, entry.digest)}"
        (self.layout / folder).mkdir(parents=True, exist_ok=True)
        paths = []
        for index, sig in enumerate(sig_files, 1):
            rel = f"{folder}/signature-{index}"
            shutil.copyfile(sig, self.layout / rel)
            paths.append(rel)
        names = []
        for key, path in zip(key_files, host_keys, strict=True):
            name = Path(key).name
            if name in self.keys and self.keys[name] != path:
                raise ValidationError(_("two different keys are named {name}").format(name=name))
            self.keys[name] = path
            names.append(name)
        self.scopes.setdefault(scope, [])
        self.scopes[scope] += [n for n in names if n not in self.scopes[scope]]
        return ImageEntry(
            entry.ref,
            entry.digest,
            entry.size,
            entry.media_type,
            entry.arch,
            entry.config,
            entry.layers,
            entry.source,
            tuple(paths),
        )

    def finish(self) -> dict[str, Any]:
        (self.layout / KEYS).mkdir(exist_ok=True)
        for name, path in sorted(self.keys.items()):
            shutil.copyfile(path, self.layout / KEYS / name)
        fragment = {
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {
                    scope: [
                        {
                            "type": "signedBy",
                            "keyType": "GPGKeys",
                            "keyPath": f"{KEY_DIR}/{name}",
                        }
                        for name in names
                    ]
                    for scope, names in sorted(self.scopes.items())
                }
            },
        }
        (self.layout / POLICY).write_text(json.dumps(fragment, indent=4) + "\n")
        return {"keys": tuple(f"{KEYS}/{n}" for n in sorted(self.keys)), "policy": POLICY}

"""Decide, like containers/image does on pull, whether an image is accepted.

:func:`check_image` resolves the most specific policy scope, then evaluates every
requirement of it (all must pass). A ``signedBy`` requirement fetches ``signature-1, -2 …``
from the lookaside that registries.d names for the image and accepts when at least one of
them verifies with the requirement's keys and matches the image (digest + identity rule).
Used by ``podsec policy explain``, ``podsec images audit`` and ``podsec monitor``.
"""

from __future__ import annotations

import base64
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.trust import reference, signature
from podsec.trust.policy import (
    ACCEPT,
    REJECT,
    SIGNED_BY,
    Policy,
    Requirement,
    scope_for,
)
from podsec.trust.registries_d import (
    ROOT_BUILTIN,
    RegistriesD,
    lookaside_for,
    signature_dir_url,
)


@dataclass(frozen=True)
class SignatureCheck:
    index: int
    ok: bool
    reason: str
    fingerprint: str | None = None
    docker_reference: str | None = None


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    scope: str
    requirements: tuple[Requirement, ...]
    keys: tuple[str, ...]
    lookaside_url: str | None
    reason: str
    transport: str = "docker"
    signatures: tuple[SignatureCheck, ...] = field(default_factory=tuple)


def rejected_text(transport: str, image_ref: str) -> str:
    return _("Running image {transport}://{ref} is rejected by policy.").format(
        transport=transport, ref=image_ref
    )


def host_url(host: Host, url: str) -> str:
    """A file:// URL of the configured system, mapped into the root prefix."""
    if host.is_live or not url.startswith("file://"):
        return url
    path = urllib.parse.urlsplit(url).path
    return "file://" + str(host.path(path)) + ("/" if url.endswith("/") else "")


def check_image(
    host: Host,
    image_ref: str,
    manifest_digest: str,
    policy: Policy,
    registries_d: RegistriesD,
    *,
    transport: str = "docker",
) -> Verdict:
    """Evaluate ``policy`` for ``image_ref`` (whose manifest has ``manifest_digest``)."""
    if transport == "docker":
        image_ref = str(reference.parse(image_ref))
    scope, reqs = scope_for(policy, transport, image_ref)
    keys = tuple(k for r in reqs for k in r.keys) + tuple(
        "keyData" for r in reqs if r.key_data is not None
    )
    lookaside: str | None = None
    sig_dir: str | None = None
    if transport == "docker":
        lookaside = lookaside_for(registries_d, image_ref) or ROOT_BUILTIN
        if manifest_digest:
            sig_dir = signature_dir_url(lookaside, reference.parse(image_ref).path, manifest_digest)
    accepted, reason = True, _("accepted")
    checks: tuple[SignatureCheck, ...] = ()
    fetched: list[bytes] | None = None
    for req in reqs:
        if req.type == ACCEPT:
            continue
        if req.type == REJECT:
            accepted, reason = False, rejected_text(transport, image_ref)
            break
        if req.type != SIGNED_BY:
            accepted, reason = (
                False,
                _(
                    "requirement {kind} cannot be checked here (Debian's tools do not support it)"
                ).format(kind=req.type),
            )
            break
        if transport != "docker" or lookaside is None:
            accepted, reason = False, _("signatures can only be checked for docker:// images")
            break
        if fetched is None:
            try:
                fetched = signature.fetch_signatures(
                    host_url(host, lookaside), reference.parse(image_ref).path, manifest_digest
                )
            except PodsecError as exc:  # a dead signature server is a refusal, not a crash
                accepted, reason = False, exc.message
                break
        ok, why, checks = _signed_by(host, req, fetched, image_ref, manifest_digest)
        if not ok:
            accepted, reason = False, why
            break
    return Verdict(accepted, scope, reqs, keys, sig_dir, reason, transport, tuple(checks))


def _signed_by(
    host: Host, req: Requirement, sigs: list[bytes], image_ref: str, digest: str
) -> tuple[bool, str, tuple[SignatureCheck, ...]]:
    if not sigs:
        return False, _("A signature was required, but no signature exists"), ()
    with tempfile.TemporaryDirectory(prefix="podsec-keys.") as tmp:
        key_files = [host.path(k) for k in req.keys]
        if req.key_data is not None:
            data_file = Path(tmp) / "keydata.pgp"
            try:
                data_file.write_bytes(base64.b64decode(req.key_data, validate=True))
            except ValueError:
                return False, _("keyData is not valid base64"), ()
            key_files.append(data_file)
        missing = [k for k in key_files if not k.is_file()]
        if missing:
            return (
                False,
                _("key file {path} does not exist").format(path=host.unroot(missing[0])),
                (),
            )
        checks = []
        for index, sig in enumerate(sigs, 1):
            try:
                verified = signature.verify(sig, key_files)
            except PodsecError as exc:
                checks.append(SignatureCheck(index, False, exc.message))
                continue
            why = signature.mismatch(verified, image_ref, digest, req.signed_identity)
            checks.append(
                SignatureCheck(
                    index,
                    why is None,
                    why or _("verified"),
                    verified.fingerprint,
                    verified.docker_reference,
                )
            )
    good = [c for c in checks if c.ok]
    if good:
        return (
            True,
            _("signature-{n} verified by {fpr}").format(n=good[0].index, fpr=good[0].fingerprint),
            tuple(checks),
        )
    return False, checks[0].reason, tuple(checks)

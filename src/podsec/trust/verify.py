"""The one place podsec decides whether an image is accepted — as containers/image does.

:func:`evaluate` takes the policy, the image (transport + reference), its manifest digest
(always computed from the manifest bytes, see :mod:`podsec.trust.manifest`) and a source of
signature blobs, finds the most specific scope and checks every requirement in order; the
first refusal decides, with containers/image's reason. :func:`check_image` adds the
lookaside lookup (registries.d) and fetches the signatures lazily. The webhook, ``policy
explain``, ``images audit``, the monitoring plugins, ``images load-sign`` and bundle loading
all go through here.

Each requirement type has a verifier in :data:`VERIFIERS`; :func:`register` adds one (the
sigstore key verifier, :mod:`podsec.trust.verify_sigstore`, is one). ``signedBaseLayer`` is
refused with containers/image's reason.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from podsec.errors import PodsecError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.trust import attachments, identity, reference, signature
from podsec.trust.policy import (
    ACCEPT,
    GPG_KEYS,
    REJECT,
    SIGNED_BASE_LAYER,
    SIGNED_BY,
    SIGSTORE_SIGNED,
    Policy,
    Requirement,
    scope_for,
)
from podsec.trust.registries_d import RegistriesD, lookaside_for, signature_dir_url
from podsec.trust.registries_d import use_sigstore_attachments as rd_use_attachments


@dataclass(frozen=True)
class SignatureCheck:
    index: int
    ok: bool
    reason: str
    fingerprint: str | None = None
    docker_reference: str | None = None
    claims: signature.Claims | None = None


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
    attachments: str | None = None  # REPO:sha256-<hex>.sig when sigstore attachments are read


SignatureSource = Callable[[], Sequence[bytes]]


class Evaluation:
    """What a verifier sees: the image and its signatures (read once, when first needed)."""

    def __init__(
        self, host: Host, transport: str, ref: str, digest: str, source: SignatureSource
    ) -> None:
        self.host = host
        self.transport = transport
        self.ref = ref
        self.digest = digest
        self.intended = intended_reference(transport, ref)
        self._source = source
        self._blobs: list[bytes] | None = None
        self.checks: list[SignatureCheck] = []

    def signatures(self) -> list[bytes]:
        """The signature blobs; one containers/image cannot parse refuses the image."""
        if self._blobs is None:
            blobs = list(self._source())
            for index, blob in enumerate(blobs, 1):
                problem = signature.blob_problem(blob)
                if problem is not None:
                    raise PodsecError(
                        _("parsing signature-{n}: {err}").format(n=index, err=problem)
                    )
            self._blobs = blobs
        return self._blobs


Verifier = Callable[[Evaluation, Requirement], tuple[bool, str]]


def intended_reference(transport: str, ref: str) -> reference.DockerRef | None:
    """The image's docker reference as its transport knows it (``DockerReference()``)."""
    if transport not in ("docker", "atomic"):
        return None
    try:
        return reference.parse(ref).with_tag_only()
    except PodsecError:
        return None


def image_name(transport: str, ref: str) -> str:
    """``transports.ImageName``: docker references are shown in their familiar form."""
    if transport == "docker":
        try:
            return f"docker://{reference.parse(ref).with_tag_only().familiar()}"
        except PodsecError:
            pass
    return f"{transport}:{ref}"


def rejected_text(transport: str, image_ref: str) -> str:
    return _("Running image {image} is rejected by policy.").format(
        image=image_name(transport, image_ref)
    )


def _accept(ev: Evaluation, req: Requirement) -> tuple[bool, str]:
    return True, _("accepted")


def _reject(ev: Evaluation, req: Requirement) -> tuple[bool, str]:
    return False, rejected_text(ev.transport, ev.ref)


def _base_layer(ev: Evaluation, req: Requirement) -> tuple[bool, str]:
    return False, _("signedBaseLayer not implemented yet!")


def _sigstore_signed(ev: Evaluation, req: Requirement) -> tuple[bool, str]:
    # imported here: cryptography is loaded only once a sigstore requirement is evaluated
    from podsec.trust import verify_sigstore

    return verify_sigstore.sigstore_signed(ev, req)


def _key_blobs(host: Host, req: Requirement) -> list[bytes]:
    if req.key_data is not None:
        import base64

        return [base64.b64decode(req.key_data)]
    out = []
    for key in req.keys:
        try:
            out.append(host.path(key).read_bytes())
        except OSError as exc:
            raise PodsecError(
                _("open {path}: {err}").format(path=key, err=exc.strerror or exc)
            ) from exc
    return out


def _signed_by(ev: Evaluation, req: Requirement) -> tuple[bool, str]:
    sigs = ev.signatures()
    rejections: list[str] = []
    accepted: SignatureCheck | None = None
    for index, blob in enumerate(sigs, 1):
        if signature.is_sigstore(blob):  # containers/image's Signatures() drops them
            continue
        check = _check_one(ev, req, index, blob)
        ev.checks.append(check)
        if check.ok and accepted is None:
            accepted = check
        elif not check.ok:
            rejections.append(check.reason)
    if accepted is not None:
        return True, _("signature-{n} verified by {fpr}").format(
            n=accepted.index, fpr=accepted.fingerprint
        )
    if not rejections:
        return False, _("A signature was required, but no signature exists")
    if len(rejections) == 1:
        return False, rejections[0]
    return False, _("None of the signatures were accepted, reasons: {reasons}").format(
        reasons="; ".join(rejections)
    )


def _key_sources(req: Requirement) -> int:
    return [req.key_path is not None, req.key_paths is not None, req.key_data is not None].count(
        True
    )


def _check_one(ev: Evaluation, req: Requirement, index: int, blob: bytes) -> SignatureCheck:
    if _key_sources(req) != 1:  # a Requirement built in Python, not parsed: never merged
        why = _('Internal inconsistency: not exactly one of "keyPath", "keyPaths" and "keyData"')
        return SignatureCheck(index, False, why, claims=signature.read_claims(blob))
    if req.key_type != GPG_KEYS:
        why = _('Unimplemented "keyType" value {kind!r}').format(kind=req.key_type)
        return SignatureCheck(index, False, why, claims=signature.read_claims(blob))
    try:
        keys = _key_blobs(ev.host, req)
    except PodsecError as exc:
        return SignatureCheck(index, False, exc.message, claims=signature.read_claims(blob))
    result = signature.examine(blob, keys)
    verified = result.verified
    if verified is None:
        return SignatureCheck(index, False, result.error or "", claims=result.claims)
    fpr, claimed = verified.fingerprint, verified.docker_reference
    if verified.manifest_digest != ev.digest:
        why = _("Signature for digest {digest} does not match").format(
            digest=verified.manifest_digest
        )
        return SignatureCheck(index, False, why, fpr, claimed, result.claims)
    if not identity.matches(req.signed_identity, ev.intended, claimed):
        why = _("Signature for identity {ref!r} is not accepted").format(ref=claimed)
        return SignatureCheck(index, False, why, fpr, claimed, result.claims)
    return SignatureCheck(index, True, _("verified"), fpr, claimed, result.claims)


VERIFIERS: dict[str, Verifier] = {
    ACCEPT: _accept,
    REJECT: _reject,
    SIGNED_BY: _signed_by,
    SIGNED_BASE_LAYER: _base_layer,
    SIGSTORE_SIGNED: _sigstore_signed,
}


def register(kind: str, verifier: Verifier) -> None:
    """Install the verifier of a requirement type (e.g. the sigstore one)."""
    VERIFIERS[kind] = verifier


def _keys(reqs: Sequence[Requirement]) -> tuple[str, ...]:
    return tuple(k for r in reqs for k in r.keys) + tuple(
        "keyData" for r in reqs if r.key_data is not None
    )


def evaluate(
    host: Host,
    policy: Policy,
    ref: str,
    digest: str,
    signatures: Sequence[bytes] | SignatureSource,
    *,
    transport: str = "docker",
    lookaside_url: str | None = None,
) -> Verdict:
    """The verdict for image ``ref`` (``transport``), whose manifest digest is ``digest``,
    given its signatures (a list, or a callable read only if a requirement needs them)."""
    if transport == "docker":
        ref = str(reference.parse(ref))
    scope, reqs = scope_for(policy, transport, ref)
    source: SignatureSource = signatures if callable(signatures) else (lambda: signatures)
    ev = Evaluation(host, transport, ref, digest, source)
    accepted, reason = True, _("accepted")
    if not reqs:
        accepted, reason = False, _("List of verification policy requirements must not be empty")
    for req in reqs:
        verifier = VERIFIERS.get(req.type)
        try:
            if verifier is None:
                ok, why = False, _("unknown requirement {kind}").format(kind=req.type)
            elif req.type in (SIGNED_BY, SIGSTORE_SIGNED) and not digest:
                ok, why = False, _("the manifest digest of the image is unknown")
            else:
                ok, why = verifier(ev, req)
        except PodsecError as exc:  # unreadable signatures, dead lookaside: a refusal
            ok, why = False, exc.message
        if not ok:
            accepted, reason = False, why
            break
        if req.type != ACCEPT:
            reason = why
    return Verdict(
        accepted, scope, reqs, _keys(reqs), lookaside_url, reason, transport, tuple(ev.checks)
    )


def host_url(host: Host, url: str) -> str:
    """A file:// URL of the configured system, mapped into the root prefix."""
    if host.is_live or not url.startswith("file://"):
        return url
    path = urllib.parse.urlsplit(url).path
    return "file://" + str(host.path(path)) + ("/" if url.endswith("/") else "")


AttachmentSources = Callable[[str], attachments.Source]


def check_image(
    host: Host,
    image_ref: str,
    manifest_digest: str,
    policy: Policy,
    registries_d: RegistriesD,
    *,
    transport: str = "docker",
    registry: AttachmentSources | None = None,
) -> Verdict:
    """Evaluate ``policy`` for ``image_ref`` (whose manifest has ``manifest_digest``),
    reading its signatures from the lookaside registries.d names for it and, where
    registries.d sets ``use-sigstore-attachments``, its sigstore attachments from the
    registry (``registry``: a source per registry host; default the stdlib reader)."""
    if transport != "docker":
        scope, reqs = scope_for(policy, transport, image_ref)
        if any(r.type in (SIGNED_BY, SIGSTORE_SIGNED) for r in reqs):
            return Verdict(
                False,
                scope,
                reqs,
                _keys(reqs),
                None,
                _("signatures can only be checked for docker:// images"),
                transport,
            )
        return evaluate(host, policy, image_ref, manifest_digest, (), transport=transport)
    ref = reference.parse(image_ref)
    try:
        # containers/image resolves the lookaside for every docker image it opens: a bad
        # URL in the section that applies refuses the image, whatever the policy says
        base = lookaside_for(registries_d, str(ref))
    except PodsecError as exc:
        scope, reqs = scope_for(policy, transport, str(ref))
        return Verdict(False, scope, reqs, _keys(reqs), None, exc.message, transport)
    sig_dir = (
        signature_dir_url(base, ref.path, manifest_digest)
        if manifest_digest and reference.is_valid_digest(manifest_digest)
        else None
    )

    attached = (
        f"{ref.domain}/{ref.path}:{attachments.tag_for(manifest_digest)}"
        if sig_dir is not None and rd_use_attachments(registries_d, str(ref))
        else None
    )

    def fetch() -> Sequence[bytes]:
        found = signature.fetch_signatures(host_url(host, base), ref.path, manifest_digest)
        if attached is not None:  # containers/image: lookaside first, then attachments
            source = (registry or attachments.HttpSource)(ref.domain)
            found = [*found, *attachments.read(source, ref.path, manifest_digest)]
        return found

    verdict = evaluate(
        host, policy, str(ref), manifest_digest, fetch, transport=transport, lookaside_url=sig_dir
    )
    return replace(verdict, attachments=attached)

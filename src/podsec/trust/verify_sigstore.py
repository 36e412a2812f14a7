"""The ``sigstoreSigned`` verifier of :mod:`podsec.trust.verify` (containers/image's
``prSigstoreSigned.isRunningImageAllowed``), for key signatures.

Of the image's signatures (lookaside blobs and sigstore attachments, in that order), simple
signatures and attachments that are not signatures (another MIME type) are counted and
skipped; each sigstore signature is checked: the requirement's keys load (every one of
them), the signature annotation exists, one key verifies it, the payload parses, its digest
is the image's and its identity is accepted by ``signedIdentity``. One accepted signature is
enough; otherwise the reason is containers/image's.

``fulcio``, ``pki`` and ``rekorPublicKey*`` requirements refuse the image with that reason:
podsec verifies key signatures only (a deliberate difference, see the README).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from podsec.errors import PodsecError
from podsec.i18n import _
from podsec.trust import identity, sigstore
from podsec.trust.policy import Requirement

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

    from podsec.trust.verify import Evaluation, SignatureCheck

UNSUPPORTED = ("fulcio", "pki", "rekorPublicKeyPath", "rekorPublicKeyPaths",
               "rekorPublicKeyData", "rekorPublicKeyDatas")  # fmt: skip


def _extra(req: Requirement, name: str) -> object:
    return dict(req.extra).get(name)


def key_pems(ev: Evaluation, req: Requirement) -> list[bytes]:
    """``loadBytesFromConfigSources`` for the key: keyPath, keyPaths, keyData, keyDatas."""
    datas = _extra(req, "keyDatas")
    sources = [
        req.key_path is not None,
        req.key_paths is not None,
        req.key_data is not None,
        datas is not None,
    ].count(True)
    if sources > 1:
        raise PodsecError(
            _(
                'Internal inconsistency: more than one of "keyPath", "keyPaths", "keyData", '
                '"keyDatas" specified'
            )
        )
    out: list[bytes] = []
    for path in req.keys:
        try:
            out.append(ev.host.path(path).read_bytes())
        except OSError as exc:
            raise PodsecError(
                _("open {path}: {err}").format(path=path, err=exc.strerror or exc)
            ) from exc
    if req.key_data is not None:
        out.append(base64.b64decode(req.key_data))
    if isinstance(datas, list):
        out += [base64.b64decode(d) for d in datas if isinstance(d, str)]
    return out


def public_keys(ev: Evaluation, req: Requirement) -> list[PublicKeyTypes]:
    """``prepareTrustRoot`` for key signatures; PodsecError with the reason otherwise."""
    unsupported = [name for name in UNSUPPORTED if _extra(req, name) is not None]
    pems = key_pems(ev, req)
    keys = []
    for index, pem in enumerate(pems, 1):
        try:
            keys.append(sigstore.load_public_key(pem))
        except sigstore.SigstoreError as exc:
            raise PodsecError(
                _("parsing public key {n}: {err}").format(n=index, err=exc.message)
            ) from exc
    if unsupported:
        raise PodsecError(
            _(
                "sigstoreSigned with {fields}: podsec verifies sigstore key signatures only "
                "(no Fulcio, Rekor or PKI certificates), so this requirement refuses the image"
            ).format(fields=", ".join(unsupported))
        )
    if not keys:
        sources = (req.key_path, req.key_paths, req.key_data, _extra(req, "keyDatas"))
        if all(source is None for source in sources):
            raise PodsecError(
                _("Internal inconsistency: A public key, Fulcio, or PKI must be specified.")
            )
        raise PodsecError(
            _(
                'Internal inconsistency: "keyPath", "keyPaths", "keyData" and "keyDatas" '
                "produced no public keys"
            )
        )
    return keys


def _fingerprint(key: PublicKeyTypes) -> str:
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + hashlib.sha256(der).hexdigest()


def check_one(
    ev: Evaluation, req: Requirement, index: int, sig: sigstore.Sigstore
) -> SignatureCheck:
    """``isSignatureAccepted`` of one sigstore signature."""
    from podsec.trust.verify import SignatureCheck

    claims = sigstore.read_claims(sig)
    try:
        keys = public_keys(ev, req)
    except PodsecError as exc:
        return SignatureCheck(index, False, exc.message, claims=claims)
    b64 = sig.annotations.get(sigstore.SIGNATURE_ANNOTATION)
    if b64 is None:
        why = _("missing {key} annotation").format(key=sigstore.SIGNATURE_ANNOTATION)
        return SignatureCheck(index, False, why, claims=claims)
    try:
        payload, signer = sigstore.verify_payload(keys, sig.payload, b64)
    except sigstore.SigstoreError as exc:
        return SignatureCheck(index, False, exc.message, claims=claims)
    fpr, claimed = _fingerprint(keys[signer]), payload.docker_reference
    if payload.manifest_digest != ev.digest:
        why = _("Signature for digest {digest} does not match").format(
            digest=payload.manifest_digest
        )
        return SignatureCheck(index, False, why, fpr, claimed, claims)
    if not identity.matches(req.signed_identity, ev.intended, claimed):
        why = _("Signature for identity {ref!r} is not accepted").format(ref=claimed)
        return SignatureCheck(index, False, why, fpr, claimed, claims)
    return SignatureCheck(index, True, _("verified"), fpr, claimed, claims)


def sigstore_signed(ev: Evaluation, req: Requirement) -> tuple[bool, str]:
    """``isRunningImageAllowed`` of a sigstoreSigned requirement."""
    rejections: list[str] = []
    simple = non_signatures = 0
    for index, blob in enumerate(ev.signatures(), 1):
        sig = sigstore.from_blob(blob)  # blobs were checked to parse when read
        if sig is None:
            simple += 1
            continue
        if sig.mime_type != sigstore.MIME_TYPE:
            non_signatures += 1
            continue
        check = check_one(ev, req, index, sig)
        ev.checks.append(check)
        if check.ok:
            return True, _("signature-{n} verified by sigstore key {fpr}").format(
                n=index, fpr=check.fingerprint
            )
        rejections.append(check.reason)
    if not rejections:
        if simple == 0 and non_signatures == 0:
            return False, _("A signature was required, but no signature exists")
        return False, _(
            "A signature was required, but no signature exists ({simple} non-sigstore "
            "signatures, {other} sigstore non-signature attachments)"
        ).format(simple=simple, other=non_signatures)
    if len(rejections) == 1:
        return False, rejections[0]
    return False, _("None of the signatures were accepted, reasons: {reasons}").format(
        reasons="; ".join(rejections)
    )


def is_simple(blob: bytes) -> bool:
    """A blob signedBy looks at (containers/image's ``Signatures()`` drops the others)."""
    return not sigstore.is_sigstore_blob(blob)

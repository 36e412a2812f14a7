"""``podsec images sign``: sign images already in a registry, GPG or sigstore, in Python.

For each image the manifest is fetched and its digest computed from the bytes; then

- GPG (``--sign-by KEY``): a simple signature is written as the next ``signature-N`` into the
  lookaside staging directory registries.d names for the image (as ``podman push
  --sign-by`` does);
- sigstore (``--sigstore``): a cosign key signature is made with the private key and pushed
  as an attachment (``sha256-<hex>.sig``, containers/image's layout; a signature already
  there is not added twice).

Every image is then checked against the policy as consumers check it (:func:`verify.
check_image`), and the report says whether it is now accepted. A second run adds nothing:
an image already carrying a signature by this key for this reference is left alone.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from podsec.errors import PodsecError, UsageError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.progress import NULL_PROGRESS, Progress
from podsec.registry.client import RegistryClient, base_url
from podsec.trust import attachments, reference, signature, sigstore, verify, view
from podsec.trust import registries_d as rd

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


@dataclass(frozen=True)
class SignRequest:
    images: tuple[str, ...]
    sigstore_key: Path | None = None  # --sigstore: the encrypted private key
    passphrase: str = ""
    sign_by: str | None = None  # GPG key (fingerprint or e-mail)
    gnupg_home: Path | None = None
    home: Path | None = None  # whose registries.d/policy decide (None: the system's)
    registry_url: str | None = None  # default: http(s)://<image's registry>


@dataclass(frozen=True)
class SignedImage:
    image: str
    digest: str
    kind: str  # "gpg" | "sigstore"
    added: bool
    where: str
    accepted: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _fixed(client: RegistryClient) -> verify.AttachmentSources:
    def source(_host: str) -> attachments.Source:
        return client

    return source


def _client(req: SignRequest, ref: reference.DockerRef) -> RegistryClient:
    return RegistryClient(req.registry_url or base_url(ref.domain))


def push_sigstore(
    client: RegistryClient, repo: str, digest: str, sigs: Sequence[sigstore.Sigstore]
) -> bool:
    """Append ``sigs`` to the attachment manifest of ``repo@digest``; True if one was new.
    Blobs go first, the manifest last (a reader sees the old or the new set, never half)."""
    tag = attachments.tag_for(digest)
    current = config = None
    try:
        current, _digest, _media = client.manifest(repo, tag)
    except PodsecError as exc:
        if "is not in the registry" not in exc.message:
            raise
    if current is not None:
        import json

        doc = json.loads(current)
        conf_digest = (doc.get("config") or {}).get("digest")
        if isinstance(conf_digest, str):
            config = client.blob(repo, conf_digest)
    update = attachments.updated(current, config, sigs)
    if not update.added:
        return False
    for blob in update.blobs:
        client.put_blob(repo, blob)
    client.put_manifest(repo, tag, update.manifest, attachments.OCI_MANIFEST)
    return True


def has_sigstore_signature(
    client: attachments.Source, repo: str, digest: str, claimed: str, key: PrivateKeyTypes
) -> bool:
    """Whether ``repo@digest`` already has a sigstore signature by ``key`` claiming exactly
    ``claimed`` (an interrupted or repeated run adds no second one)."""
    public = key.public_key()
    for blob in attachments.read(client, repo, digest):
        sig = sigstore.from_blob(blob)
        b64 = sig.annotations.get(sigstore.SIGNATURE_ANNOTATION) if sig else None
        if sig is None or sig.mime_type != sigstore.MIME_TYPE or b64 is None:
            continue
        try:
            payload, _index = sigstore.verify_payload([public], sig.payload, b64)
        except sigstore.SigstoreError:
            continue
        if payload.manifest_digest == digest and payload.docker_reference == claimed:
            return True
    return False


def _staging_dir(trust: view.TrustView, host: Host, image: str) -> Path:
    url = rd.lookaside_for(trust.regd, image, write=True)
    problem = rd.scheme_problem(url, write=True)
    if problem is not None:
        raise UsageError(problem, hint=_("set lookaside-staging to a file:// URL in registries.d"))
    return host.path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))


def _sign_gpg(host: Host, req: SignRequest, trust: view.TrustView, ref: reference.DockerRef,
              digest: str) -> tuple[bool, str]:  # fmt: skip
    assert req.sign_by is not None
    staging = _staging_dir(trust, host, str(ref))
    folder = staging / signature.sig_dir_name(ref.path, digest)
    for existing in sorted(folder.glob("signature-*")) if folder.is_dir() else []:
        claims = signature.read_claims(existing.read_bytes())
        if claims.docker_reference == str(ref) and claims.manifest_digest == digest:
            key = claims.key_id or ""
            if key and (key.endswith(req.sign_by.upper()) or req.sign_by.upper().endswith(key)):
                return False, host.unroot(existing)
    payload = signature.make_payload(str(ref), digest)
    sig = signature.sign(payload, req.sign_by, req.gnupg_home, req.passphrase or None)
    path = signature.store_signature(staging, ref.path, digest, sig)
    return True, host.unroot(path)


def load_key(path: Path, passphrase: str) -> PrivateKeyTypes:
    from podsec.trust import sigstore_keys

    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            _("cannot read the sigstore private key {path}: {err}").format(
                path=path, err=exc.strerror or exc
            ),
            hint=_("give --key PATH (podsec users create-imagemaker --sigstore writes one)"),
        ) from exc
    return sigstore_keys.load_private(pem, passphrase.encode())


def sign_images(
    host: Host, req: SignRequest, *, progress: Progress = NULL_PROGRESS
) -> list[SignedImage]:
    """Sign every image of ``req`` (all validated first; see the module docstring)."""
    if (req.sigstore_key is None) == (req.sign_by is None):
        raise UsageError(_("give either --sigstore or --sign-by KEY"))
    if not req.images:
        raise UsageError(_("give at least one image"))
    for image in req.images:
        first = image.split("/", 1)[0]
        if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
            raise UsageError(
                _("{image}: name the registry (e.g. registry.local/{image})").format(image=image)
            )
    refs = [reference.parse(i) for i in req.images]
    if req.sign_by is not None:
        from podsec.trust import keys

        keys.signing_key(req.gnupg_home, req.sign_by)  # one key, or refused before any push
    trust = view.effective(host, req.home)
    key = load_key(req.sigstore_key, req.passphrase) if req.sigstore_key is not None else None
    out = []
    progress.start(_("signing"), total=len(refs))
    for ref in refs:
        client = _client(req, ref)
        _body, digest, _media = client.manifest(ref.path, ref.digest or ref.tag or "latest")
        if ref.digest and ref.digest != digest:
            raise PodsecError(
                _("{ref}: the registry served a manifest whose digest is {found}").format(
                    ref=ref, found=digest
                )
            )
        claimed = ref.with_tag_only() if not ref.digest else ref
        if key is not None:
            where, kind = f"{ref.domain}/{ref.path}:{attachments.tag_for(digest)}", "sigstore"
            added = False
            if not has_sigstore_signature(client, ref.path, digest, str(claimed), key):
                sig = sigstore.sign_image(key, str(claimed), digest)
                added = push_sigstore(client, ref.path, digest, [sig])
        else:
            added, where = _sign_gpg(host, req, trust, claimed, digest)
            kind = "gpg"
        v = verify.check_image(
            host, str(claimed), digest, trust.policy, trust.regd, registry=_fixed(client)
        )
        out.append(SignedImage(str(claimed), digest, kind, added, where, v.accepted, v.reason))
        progress.advance(_("signing"))
    progress.finish(_("signing"))
    return out


def registry_images(client: RegistryClient, registry: str, scopes: Sequence[str]) -> list[str]:
    """``REGISTRY/REPO:TAG`` of every image tag under ``scopes`` (all when empty); cosign
    attachment tags are not images."""
    from podsec.registry.audit import attachment_target

    out = []
    for repo in sorted(client.catalog()):
        name = f"{registry}/{repo}"
        if scopes and not any(name == s or name.startswith(s.rstrip("/") + "/") for s in scopes):
            continue
        for tag in sorted(client.tags(repo) or []):
            if attachment_target(tag) is None:
                out.append(f"{name}:{tag}")
    return out


def resign(
    host: Host,
    req: SignRequest,
    *,
    registry: str,
    scopes: Sequence[str] = (),
    progress: Progress = NULL_PROGRESS,
) -> list[SignedImage]:
    """Sign every image the registry holds under ``scopes`` with ``req``'s key (after a key
    rotation: then ``rotate-key --retire`` can drop the old key). Idempotent."""
    for scope in scopes:
        if not scope.startswith(registry + "/") and scope != registry:
            raise UsageError(
                _("{scope} is not in the registry {registry}").format(
                    scope=scope, registry=registry
                )
            )
    client = RegistryClient(req.registry_url or base_url(registry))
    images = registry_images(client, registry, scopes)
    if not images:
        return []
    return sign_images(host, replace(req, images=tuple(images)), progress=progress)

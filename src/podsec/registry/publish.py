"""Publishing one loaded image: signed first, then visible, then checked, else taken back.

:class:`Publisher` writes the image's signature to its lookaside staging (or the archive's
own signatures, for ``load --verify``: sigstore ones pushed as the registry attachment), puts its manifest under the tag, and checks it
against the policy exactly as consumers will (``check_image``: the signature fetched from
the lookaside URL, verified with the policy's key). A refusal deletes the manifest again and
removes the signature. It also tells which images an earlier run already published.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from podsec.errors import NotFoundError, PodsecError, ValidationError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.progress import Progress
from podsec.registry import naming, sign
from podsec.registry.client import RegistryClient
from podsec.registry.load_plan import PlannedImage, State, Trust
from podsec.trust import manifest as trust_manifest
from podsec.trust import policy as trust_policy
from podsec.trust import signature, sigstore, verify


class Publisher:
    def __init__(
        self,
        host: Host,
        trust: Trust,
        client: RegistryClient,
        state: State,
        *,
        progress: Progress,
        task_images: str,
        signer: str | None,
        gnupg_home: Path | None,
        passphrase: str | None,
        verify_bundle: bool,
    ):
        self.host = host
        self.regd = trust.regd
        self.policy = trust.policy
        self.signer_key = trust.signer_key
        self.sigstore_signer = trust.sigstore_signer
        self.client = client
        self.state = state
        self.progress = progress
        self.task_images = task_images
        self.signer = signer
        self.gnupg_home = gnupg_home
        self.passphrase = passphrase
        self.verify_bundle = verify_bundle

    def skip_completed(self, images: list[PlannedImage], pool: ThreadPoolExecutor) -> None:
        """Mark the images whose tag already holds their digest and passes the policy."""

        def check(image: PlannedImage) -> None:
            try:
                body = self.client.manifest(image.repo, tag(image.target))[0]
            except NotFoundError:
                return
            # the digest is the manifest's, never the registry's Docker-Content-Digest
            if not trust_manifest.matches_digest(body, image.entry.digest):
                return
            if self.verdict(image).accepted:
                image.skipped = True
                image.note = _("already loaded")
                self.state.record(image.entry.ref, str(image.target), image.entry.digest)

        list(pool.map(check, images))

    def verdict(self, image: PlannedImage) -> verify.Verdict:
        client = self.client
        return verify.check_image(
            self.host,
            str(image.target),
            image.entry.digest,
            self.policy,
            self.regd,
            registry=lambda _host: client,
        )

    # -- signatures --------------------------------------------------------------------
    def sign(self, image: PlannedImage) -> Path | None:
        ref, digest = str(image.target), image.entry.digest
        if self.verify_bundle:
            # simple signatures to the lookaside, sigstore ones as the registry attachment
            # (containers/image's order: lookaside first), all before the manifest
            stored = None
            attached = []
            for blob in image.bundle_sigs:
                found = sigstore.from_blob(blob)
                if found is None:
                    stored = self.store(image, blob)
                else:
                    attached.append(found)
            if attached:
                sign.push_sigstore(self.client, image.repo, digest, attached)
            return stored
        if self.sigstore_signer is not None:
            # an attachment in the registry, pushed before the manifest makes the image visible
            key = self.sigstore_signer
            if not sign.has_sigstore_signature(self.client, image.repo, digest, ref, key):
                attachment = sigstore.sign_image(key, ref, digest)
                sign.push_sigstore(self.client, image.repo, digest, [attachment])
            return None
        assert self.signer is not None and self.signer_key is not None
        existing = self.existing_signature(image)
        if existing is not None:
            return existing
        payload = signature.make_payload(ref, digest)
        sig = signature.sign(payload, self.signer, self.gnupg_home, self.passphrase)
        return self.store(image, sig)

    def store(self, image: PlannedImage, sig: bytes) -> Path:
        """Write a signature file; a failed write (full disk) leaves no partial file."""
        folder = image.staging / signature.sig_dir_name(image.target.repo, image.entry.digest)
        before = set(folder.glob("signature-*")) if folder.is_dir() else set()
        try:
            return signature.store_signature(
                image.staging, image.target.repo, image.entry.digest, sig
            )
        except OSError as exc:
            for path in set(folder.glob("signature-*")) - before:
                path.unlink(missing_ok=True)
            raise PodsecError(
                _("cannot write the signature of {ref} under {path}: {err}").format(
                    ref=image.target, path=image.staging, err=exc.strerror or exc
                ),
                hint=_("free some space and re-run: the image was not published"),
            ) from exc

    def existing_signature(self, image: PlannedImage) -> Path | None:
        """A signature by our key for this image left by an interrupted run: reuse it."""
        assert self.signer_key is not None
        folder = image.staging / signature.sig_dir_name(image.target.repo, image.entry.digest)
        if not folder.is_dir():
            return None
        for path in sorted(folder.glob("signature-*")):
            try:
                verified = signature.verify(path.read_bytes(), [self.signer_key])
            except PodsecError:
                continue
            # ours: this digest, this exact reference (what sign would write again)
            if verified.manifest_digest == image.entry.digest and verified.docker_reference == str(
                image.target
            ):
                return path
        return None

    # -- manifests ---------------------------------------------------------------------
    def publish(self, image: PlannedImage) -> None:
        assert image.signature is not None and image.manifest is not None
        sig_path = image.signature.result()  # signed before it becomes visible
        digest = self.client.put_manifest(
            image.repo, tag(image.target), image.manifest, image.entry.media_type
        )
        if digest != image.entry.digest:
            self.rollback(image, digest, sig_path)
            raise ValidationError(
                _("{ref}: the registry stored digest {got}, expected {expected}").format(
                    ref=image.target, got=digest, expected=image.entry.digest
                )
            )
        verdict = self.verdict(image)
        if not verdict.accepted:
            self.rollback(image, digest, sig_path)
            raise PodsecError(
                _("{ref}: the policy refuses the pushed image ({reason}); it was removed").format(
                    ref=image.target, reason=verdict.reason
                ),
                hint=_(
                    "the policy must trust the signer's key for this path "
                    "(podsec users create-imagemaker USER@PATH)"
                ),
            )
        image.note = verdict.reason
        signed = (trust_policy.SIGNED_BY, trust_policy.SIGSTORE_SIGNED)
        if not any(r.type in signed for r in verdict.requirements):
            image.note = _("accepted, but the policy requires no signature for it")
        self.state.record(image.entry.ref, str(image.target), digest)
        self.progress.advance(self.task_images)

    def rollback(self, image: PlannedImage, digest: str, sig_path: Path | None) -> None:
        try:
            self.client.delete_manifest(image.repo, digest)
        except PodsecError as exc:
            raise PodsecError(
                _(
                    "{ref} is published but failed verification and could not be deleted: {err}"
                ).format(ref=image.target, err=exc.message),
                hint=_("delete it from the registry by hand"),
            ) from exc
        if sig_path is not None and not self.verify_bundle:
            sig_path.unlink(missing_ok=True)


def tag(ref: naming.Reference) -> str:
    return ref.tag or ref.digest or "latest"

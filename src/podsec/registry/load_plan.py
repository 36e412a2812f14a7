"""Deciding what a load does, before anything is sent.

From the archive's contents list and the request: is it the right architecture and a
supported platform, which target each image goes to, where its signature is staged, where
the progress of this archive into this target is recorded (:class:`State`) and — for
``load --verify`` — whether the signatures the archive carries satisfy this node's policy.
Every refusal here happens before the first byte reaches the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podsec.errors import NotFoundError, PodsecError, UsageError, ValidationError
from podsec.host import files
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import REGISTRY_HOST
from podsec.registry import naming, oci
from podsec.registry.platform import same_platform
from podsec.trust import keys as trust_keys
from podsec.trust import policy as trust_policy
from podsec.trust import registries_d, signature, verify


@dataclass
class PlannedImage:
    """One image of the archive on its way to ``target`` (and how far it got)."""

    entry: oci.ImageEntry
    target: naming.Reference
    need: set[str]
    manifest: bytes | None = None
    signature: Future[Path | None] | None = None
    done: bool = False
    skipped: bool = False
    note: str = ""
    bundle_sigs: list[bytes] = field(default_factory=list)
    staging: Path = Path()

    @property
    def repo(self) -> str:
        return self.target.repo


@dataclass
class Trust:
    """What the signing and the checks read once per load: registries.d, the policy and
    the signer's public key (exported into ``workdir``)."""

    regd: registries_d.RegistriesD
    policy: trust_policy.Policy
    signer_key: Path | None
    workdir: tempfile.TemporaryDirectory[str]
    sigstore_signer: Any = None  # the decrypted sigstore private key (load-sign --sigstore)

    def close(self) -> None:
        self.workdir.cleanup()


def load_trust(
    registries_dir: Path | None,
    policy_path: Path | None,
    signer: str | None,
    gnupg_home: Path | None,
    *,
    sigstore_key: Path | None = None,
    passphrase: str | None = None,
) -> Trust:
    """The configuration checks, before anything is read or sent (a sigstore key is
    decrypted here: a wrong passphrase stops the load before the first byte)."""
    regd = registries_d.RegistriesD()
    if registries_dir is not None:
        regd = registries_d.load_dir(registries_dir)
    if policy_path is None or not policy_path.is_file():
        raise NotFoundError(
            _("no policy at {path}: images could not be verified after the push").format(
                path=policy_path
            ),
            hint=_("run podsec policy create first"),
        )
    policy = trust_policy.load(policy_path)
    sigstore_signer = None
    if sigstore_key is not None:
        from podsec.registry import sign

        sigstore_signer = sign.load_key(sigstore_key, passphrase or "")
    workdir = tempfile.TemporaryDirectory(prefix="podsec-load.")
    signer_key = None
    try:
        if signer is not None:
            found = trust_keys.signing_key(gnupg_home, signer)
            if found is None:
                raise NotFoundError(
                    _("no secret key for {signer} in {home}").format(
                        signer=signer, home=gnupg_home or "~/.gnupg"
                    ),
                    hint=_("the image maker's key is made by podsec users create-imagemaker"),
                )
            signer_key = Path(workdir.name) / "signer.pgp"
            signer_key.write_text(trust_keys.export_public(gnupg_home, signer))
    except BaseException:
        workdir.cleanup()
        raise
    return Trust(regd, policy, signer_key, workdir, sigstore_signer)


def staging_for(host: Host, regd: registries_d.RegistriesD, ref: str) -> Path:
    """The lookaside-staging directory signatures of ``ref`` are written to."""
    url = registries_d.configured_lookaside(regd, ref, write=True)
    if url is None or not url.startswith("file://"):
        raise PodsecError(
            _("no lookaside-staging directory (file://) is configured for {ref}").format(ref=ref),
            hint=_(
                "image makers sign through lookaside-staging in registries.d "
                "(podsec users create-imagemaker sets it up)"
            ),
        )
    return Path(verify.host_url(host, url)[len("file://") :])


def archive_platform(
    contents: oci.Contents,
    archive: Path,
    arch: str,
    *,
    target: naming.Reference | None,
    node_platform: str | None,
    confirm: Callable[[str], bool] | None,
) -> str:
    """The platform the archive was made for, after the architecture checks; a platform
    other than the node's (with no explicit target) needs ``confirm``."""
    if contents.arch and contents.arch != arch:
        raise ValidationError(
            _("the archive holds {found} images, not {arch}").format(found=contents.arch, arch=arch)
        ).as_original(7)
    if not contents.images:
        raise ValidationError(_("{path}: the archive lists no images").format(path=archive))
    for entry in contents.images:
        if entry.arch and entry.arch != arch:
            raise ValidationError(
                _("{ref} in the archive is for {found}, not {arch}").format(
                    ref=entry.ref, found=entry.arch, arch=arch
                )
            )
    platform = naming.platform_of(contents.images[0].ref)
    # the seed's k8s-c10f1 / k8s-p10 and the plain c10f / p10 name the same platform
    if target is None and node_platform and not same_platform(node_platform, platform):
        question = _(
            "the archive is for platform {found}, this node uses {platform}; continue?"
        ).format(found=platform, platform=node_platform)
        if confirm is None or not confirm(question):
            raise UsageError(
                _("the archive is for platform {found}, not {platform}").format(
                    found=platform, platform=node_platform
                ),
                hint=_("pass --yes to load it anyway, or REGISTRY/PATH to choose the target"),
            )
    return platform


def target_text(target: naming.Reference | None, platform: str) -> str:
    return str(target) if target else f"{REGISTRY_HOST}/{platform}"


def registry_host(target: naming.Reference | None) -> str:
    return target.host if target else REGISTRY_HOST


def planned_images(
    contents: oci.Contents, platform: str, target: naming.Reference | None
) -> list[PlannedImage]:
    return [
        PlannedImage(
            entry, naming.target_for(entry.ref, platform, target), {b.digest for b in entry.blobs}
        )
        for entry in contents.images
    ]


# ------------------------------------------------------------------------------ progress state
class State:
    """Progress of one archive into one target, for the report and for resuming."""

    def __init__(self, path: Path | None, archive: Path, target: str):
        self.path = path
        self.lock = threading.Lock()
        self.data: dict[str, Any] = {"archive": str(archive), "target": target, "images": {}}
        if path is not None and path.is_file():
            try:
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict) and isinstance(loaded.get("images"), dict):
                    self.data = loaded
            except (OSError, ValueError):
                pass  # a damaged state file only costs re-checking

    def done(self, ref: str, digest: str) -> bool:
        entry = self.data["images"].get(ref)
        return isinstance(entry, dict) and entry.get("digest") == digest

    def record(self, ref: str, target: str, digest: str) -> None:
        with self.lock:
            self.data["images"][ref] = {"target": target, "digest": digest, "at": int(time.time())}
            if self.path is None:
                return
            text = json.dumps(self.data, indent=1, sort_keys=True)
            files.atomic_write(self.path, text, mode=0o644, backup=False)


def state_path(state_dir: Path, archive: Path, arch: str, target: str) -> Path:
    st = archive.stat()
    key = f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}|{arch}|{target}"
    return state_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def default_state_dir(home: Path) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(home / ".local" / "state")
    return Path(base) / "podsec" / "load"


# -------------------------------------------------------------------- load --verify: the bundle
def check_bundle(
    host: Host,
    trust: Trust,
    images: list[PlannedImage],
    meta: dict[str, bytes],
    contents: oci.Contents,
) -> None:
    """load --verify: every image's bundled signatures (GPG and sigstore) must satisfy the
    TARGET's policy (its own trusted keys) before anything is sent, and the target must
    read back what is restored: carried sigstore signatures become attachments, which
    containers/image writes (and reads) only where registries.d sets
    ``use-sigstore-attachments``."""
    policy = trust.policy
    for image in images:
        sigs = []
        for rel in image.entry.signatures:
            data = meta.get(rel)
            if data is None:
                raise ValidationError(
                    _("{ref}: signature {path} is missing from the archive").format(
                        ref=image.entry.ref, path=rel
                    )
                )
            sigs.append(data)
        if not sigs:
            raise ValidationError(
                _("{ref}: the archive carries no signature for it").format(ref=image.entry.ref),
                hint=_("bundles are written by podsec images save --with-signatures"),
            )
        verdict = verify.evaluate(host, policy, str(image.target), image.entry.digest, sigs)
        if not verdict.accepted:
            raise ValidationError(
                _("{ref}: refused by the policy of this node: {reason}").format(
                    ref=image.target, reason=verdict.reason
                ),
                hint=_bundle_hint(contents),
            )
        attaches = registries_d.use_sigstore_attachments(trust.regd, str(image.target))
        if any(signature.is_sigstore(s) for s in sigs) and not attaches:
            raise ValidationError(
                _(
                    "{ref}: the archive carries sigstore signatures, but registries.d of this "
                    "node does not use sigstore attachments for it"
                ).format(ref=image.target),
                hint=_("set use-sigstore-attachments: true for its scope in registries.d"),
            )
        image.bundle_sigs = sigs


def needs_staging(image: PlannedImage, trust: Trust, verify_bundle: bool) -> bool:
    """Whether ``image``'s signatures go to a lookaside staging directory: GPG signing, or a
    bundle's simple signatures (sigstore ones go to the registry as attachments)."""
    if verify_bundle:
        return any(not signature.is_sigstore(s) for s in image.bundle_sigs)
    return trust.sigstore_signer is None


def _bundle_hint(contents: oci.Contents) -> str:
    if contents.keys:
        return _(
            "the archive carries the signer's public key ({keys}); trust it on this node "
            "only if you trust its maker"
        ).format(keys=", ".join(contents.keys))
    return _("the signer's key is not trusted on this node")

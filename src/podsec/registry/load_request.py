"""What ``load-sign`` / ``load --verify`` are asked to do — :class:`LoadRequest`, built from
the commands' options by :func:`request` — and what they report (:class:`LoadResult`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec.config import Settings
from podsec.errors import PodsecError, UsageError
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.registry import load_plan, naming


@dataclass(frozen=True)
class LoadRequest:
    archive: Path
    arch: str
    target: naming.Reference | None = None  # REGISTRY/PATH; None: registry.local/<platform>
    signer: str | None = None  # load-sign: the maker's key; None with verify_bundle
    sigstore_key: Path | None = None  # load-sign --sigstore: the maker's private key file
    gnupg_home: Path | None = None
    passphrase: str | None = None
    registry_url: str | None = None  # default http://<target host>
    registries_d: Path | None = None
    policy_path: Path | None = None
    platform: str | None = None  # U7S_PLATFORM when set explicitly
    verify_bundle: bool = False  # load --verify: use the archive's signatures
    state_dir: Path | None = None
    jobs: int = 4
    confirm: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class LoadedImage:
    ref: str
    target: str
    digest: str
    status: str  # "pushed" | "skipped"
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "ref": self.ref,
            "target": self.target,
            "digest": self.digest,
            "status": self.status,
            "note": self.note,
        }


@dataclass(frozen=True)
class LoadResult:
    images: tuple[LoadedImage, ...]
    bytes_sent: int
    seconds: float
    state_file: Path | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": [i.as_dict() for i in self.images],
            "bytes": self.bytes_sent,
            "seconds": round(self.seconds, 2),
            "state_file": str(self.state_file) if self.state_file else None,
        }


def request(
    host: Host,
    settings: Settings,
    *,
    archive: Path,
    arch: str,
    target: str | None,
    signer: str | None,
    passphrase_file: Path | None,
    verify_bundle: bool,
    sigstore: bool = False,
    policy_file: Path | None,
    registry_url: str | None,
    jobs: int,
    confirm: Callable[[str], bool],
) -> LoadRequest:
    """The request of ``load-sign`` / ``load --verify`` from their options: only image makers
    load; the calling user's registries.d; the system policy the nodes use unless
    ``policy_file``; the passphrase read from ``passphrase_file``; ``$GNUPGHOME``. With
    ``sigstore`` the signer is the sigstore private key file (``-``: the user's own)."""
    import os

    from podsec.trust import users, view
    from podsec.trust.policy import SYSTEM_POLICY

    users.require_image_maker()
    sigstore_key = None
    if sigstore:
        from podsec.trust.sigstore_keys import USER_PRIVATE_KEY

        sigstore_key = Path.home() / USER_PRIVATE_KEY if signer == "-" else Path(str(signer))
        signer = None
    # podsec-load-sign-oci keeps the original's exit codes: 3 architecture, 4 empty target
    try:
        the_arch = naming.check_arch(arch)
    except PodsecError as exc:
        raise exc.as_original(3) from None
    if target is not None and not target.strip():
        raise UsageError(_("the target REGISTRY/PATH is empty")).as_original(4)
    target_ref = naming.parse_target(target) if target else None
    passphrase = None
    if passphrase_file is not None:
        try:
            passphrase = passphrase_file.read_text().rstrip("\n")
        except OSError as exc:
            raise UsageError(
                _("{path}: cannot read: {err}").format(path=passphrase_file, err=exc.strerror)
            ) from exc
    gnupg = os.environ.get("GNUPGHOME")
    return LoadRequest(
        archive=archive.absolute(),
        arch=the_arch,
        target=target_ref,
        signer=signer,
        sigstore_key=sigstore_key,
        gnupg_home=Path(gnupg) if gnupg else None,
        passphrase=passphrase,
        registry_url=registry_url,
        registries_d=view.caller_paths(host)[1],
        policy_path=policy_file or host.path(SYSTEM_POLICY),
        platform=settings.platform,
        verify_bundle=verify_bundle,
        state_dir=load_plan.default_state_dir(Path.home()),
        jobs=jobs,
        confirm=confirm,
    )

"""``podsec images save | save-k8s | load-sign | load``: air-gapped image archives.

Registered on the ``images`` group by podsec.cli.images; the original program names
(podsec-save-oci, podsec-k8s-save-oci, podsec-load-sign-oci) run the same commands.

Kept as one module over 500 lines: one command family (save, save-k8s, load-sign, load),
about two thirds click options and help; the rules live in podsec.registry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from podsec.cli import context, output
from podsec.cli.main import legacy
from podsec.errors import UsageError
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.registry.archive import SavedArchive
    from podsec.registry.load import LoadResult


def _confirm(yes: bool) -> Callable[[str], bool]:
    """A confirmation callback: --yes says yes, a terminal asks, anything else says no."""

    def ask(question: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            return False
        return click.confirm(question, default=False, err=True)

    return ask


def _fmt_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _report_saved(env: context.CliEnv, archives: list[SavedArchive]) -> None:
    if env.json:
        output.emit_json(archives)
        return
    for a in archives:
        output.result(
            _("{path}: {n} images, {size} ({layout} uncompressed) in {sec:.1f} s").format(
                path=a.path,
                n=len(a.images),
                size=_fmt_size(a.size),
                layout=_fmt_size(a.layout_bytes),
                sec=a.seconds,
            )
        )
        output.table(
            None,
            [_("image"), _("manifest digest")],
            [(i.ref, i.digest) for i in a.images],
        )


# ------------------------------------------------------------------------------ save options
# save and save-k8s share these; two decorators because save lists --with-signatures between.
def _codec_options(func: Callable[..., None]) -> Callable[..., None]:
    """--zstd / --level: how the archive is compressed."""
    func = click.option(
        "--level",
        type=int,
        metavar="N",
        help=_("Compression level (xz 0-9, default 9; zstd 1-22, default 19)."),
    )(func)
    return click.option("--zstd", is_flag=True, help=_("Compress with zstd instead of xz."))(func)


def _copy_options(func: Callable[..., None]) -> Callable[..., None]:
    """--threads / --src-tls-verify: how the images are read and compressed."""
    func = click.option(
        "--src-tls-verify/--no-src-tls-verify",
        default=None,
        help=_("Require HTTPS for docker:// sources (default: skopeo's configuration)."),
    )(func)
    return click.option(
        "--threads",
        type=click.IntRange(1, 64),
        default=2,
        show_default=True,
        help=_("Compressor threads."),
    )(func)


# ------------------------------------------------------------------------------ save
@click.command(
    "save",
    help=_(
        "Save images into one OCI layout per architecture (blobs shared, layers stored "
        "uncompressed) compressed as a whole into DIR/<arch>.tar.xz (or .tar.zst). ARCHS is a "
        "comma list (amd64,arm64,arm,ppc64le,386) or all. TRANSPORT (docker://, "
        "containers-storage:[...], oci:PATH) applies to every IMAGE that has none."
    ),
    epilog=_(
        "Examples:\n\n"
        "  podsec images save /tmp/oci amd64 registry.altlinux.org/p10/pause:3.9\n\n"
        "  podsec images save /tmp/oci amd64,arm64 docker:// registry.altlinux.org/alt/alt:p10\n\n"
        "  podsec images save /tmp/oci amd64 oci:/srv/layout c10f/etcd:3.5.9-0 --zstd\n\n"
        "  podsec images save /tmp/b amd64 registry.local/p10/app:1 --with-signatures"
    ),
)
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.argument("arches", metavar="ARCHS")
@click.argument("rest", metavar="[TRANSPORT] IMAGE...", nargs=-1, required=True)
@_codec_options
@click.option(
    "--with-signatures",
    is_flag=True,
    help=_(
        "Keep the images as published and carry their signatures: the GPG lookaside files "
        "and, where the scope requires sigstoreSigned, the sigstore attachments "
        "(sha256-<hex>.sig); each image is verified under this host's policy first, and the "
        "public keys and a policy fragment go with them (checked by load --verify)."
    ),
)
@_copy_options
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def save_cmd(
    ctx: click.Context,
    *,
    out_dir: Path,
    arches: str,
    rest: tuple[str, ...],
    zstd: bool,
    level: int | None,
    with_signatures: bool,
    threads: int,
    src_tls_verify: bool | None,
    json_output: bool,
) -> None:
    from podsec.registry import archive, compress, naming
    from podsec.trust import view

    env = context.with_json(ctx, json_output)
    arch_list = naming.parse_arches(arches)
    sources = naming.parse_sources(rest)
    policy, registries_d = view.caller_paths(env.host) if with_signatures else (None, None)
    request = archive.SaveRequest(
        out_dir=out_dir.absolute(),
        arches=arch_list,
        sources=sources,
        codec=(compress.ZSTD if zstd else compress.XZ).with_level(level),
        threads=threads,
        with_signatures=with_signatures,
        src_tls_verify=src_tls_verify,
        registries_d=registries_d,
        policy=policy,
    )
    with output.progress(not env.json) as progress:
        saved = archive.save(env.host, request, progress)
    _report_saved(env, saved)


# ------------------------------------------------------------------------------ save-k8s
@click.command(
    "save-k8s",
    help=_(
        "Save the Kubernetes image set for one architecture: what kubeadm config images list "
        "names for the version (U7S_KUBEVERSION or kubeadm's own) under "
        "<U7S_REGISTRY>/<platform>, plus flannel and flannel-cni-plugin, plus --extra images. "
        "PLATFORM defaults to U7S_PLATFORM or this system's platform."
    ),
    epilog=_(
        "Examples:\n\n"
        "  podsec images save-k8s /tmp/oci amd64 c10f\n\n"
        "  U7S_KUBEVERSION=v1.26.9 U7S_FLANNEL_TAG=v0.25.1 podsec images save-k8s /tmp/oci amd64\n\n"
        "  U7S_REGISTRY=registry.local podsec images save-k8s /tmp/oci amd64 p10 \\\n"
        "      --source oci:/srv/k8s-layout --no-flannel --exclude coredns"
    ),
)
@click.argument("out_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.argument("arch", metavar="ARCH")
@click.argument("platform", metavar="[PLATFORM]", required=False)
@click.option("--kubernetes-version", metavar="vX.Y.Z", help=_("Default: U7S_KUBEVERSION."))
@click.option(
    "--source",
    metavar="TRANSPORT",
    default="docker://",
    show_default=True,
    help=_("Where to read the images: docker://, containers-storage:[...], oci:PATH."),
)
@click.option("--extra", multiple=True, metavar="IMAGE", help=_("Add an image (repeatable)."))
@click.option(
    "--exclude",
    multiple=True,
    metavar="NAME",
    help=_("Leave out an image by name, e.g. coredns (repeatable)."),
)
@click.option("--no-flannel", is_flag=True, help=_("Leave out flannel and flannel-cni-plugin."))
@click.option("--flannel-tag", metavar="TAG", help=_("Default: U7S_FLANNEL_TAG."))
@click.option(
    "--flannel-cni-plugin-tag",
    metavar="TAG",
    help=_("Default: U7S_FLANNELCNIPLUGIN_TAG or the shipped kube-flannel.yml."),
)
@_codec_options
@_copy_options
@click.option("--yes", "-y", is_flag=True, help=_("Do not ask questions."))
@click.option("--dry-run", is_flag=True, help=_("Only print the image list."))
@click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON."))
@click.pass_context
def save_k8s_cmd(
    ctx: click.Context,
    *,
    out_dir: Path,
    arch: str,
    platform: str | None,
    kubernetes_version: str | None,
    source: str,
    extra: tuple[str, ...],
    exclude: tuple[str, ...],
    no_flannel: bool,
    flannel_tag: str | None,
    flannel_cni_plugin_tag: str | None,
    zstd: bool,
    level: int | None,
    threads: int,
    src_tls_verify: bool | None,
    yes: bool,
    dry_run: bool,
    json_output: bool,
) -> None:
    from podsec.registry import archive, compress, k8s_images, naming
    from podsec.registry import platform as platforms

    env = context.with_json(ctx, json_output)
    the_arch = naming.check_arch(arch)
    # only a terminal is asked; elsewhere the given platform is used
    the_platform = platforms.for_archive(
        env.settings,
        env.host,
        platform,
        confirm=lambda q: (
            yes or not sys.stdin.isatty() or click.confirm(q, default=False, err=True)
        ),
    )
    transport = naming.check_transport(source)
    image_set = k8s_images.image_set(
        env.settings,
        env.host,
        the_platform,
        kube_version=kubernetes_version,
        flannel=not no_flannel,
        flannel_tag=flannel_tag,
        cni_tag=flannel_cni_plugin_tag,
        extra=extra,
        exclude=exclude,
    )
    if dry_run:
        if env.json:
            output.emit_json(image_set)
        else:
            for image in image_set.images:
                output.result(image)
        return
    sources = k8s_images.sources(
        image_set,
        transport,
        set_available=env.settings.set_available_images,
        tls_verify=src_tls_verify,
    )
    request = archive.SaveRequest(
        out_dir=out_dir.absolute(),
        arches=(the_arch,),
        sources=sources,
        src_tls_verify=src_tls_verify,
        codec=(compress.ZSTD if zstd else compress.XZ).with_level(level),
        threads=threads,
    )
    with output.progress(not env.json) as progress:
        saved = archive.save(env.host, request, progress)
    _report_saved(env, saved)


# ------------------------------------------------------------------------------ load-sign / load
def _report_loaded(env: context.CliEnv, result: LoadResult) -> None:
    if env.json:
        output.emit_json(result)
        return
    output.table(
        None,
        [_("image"), _("status"), _("manifest digest"), _("verification")],
        [(i.target, i.status, i.digest, i.note) for i in result.images],
    )
    pushed = sum(1 for i in result.images if i.status == "pushed")
    output.info(
        _("{pushed} pushed, {skipped} already loaded, {size} read in {sec:.1f} s").format(
            pushed=pushed,
            skipped=len(result.images) - pushed,
            size=_fmt_size(result.bytes_sent),
            sec=result.seconds,
        )
    )


_LOAD_OPTIONS = [
    click.option(
        "--policy",
        "policy_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help=_(
            "Policy the pushed images are verified against (default: the system policy "
            "the nodes use, /etc/containers/policy.json)."
        ),
    ),
    click.option(
        "--registry-url",
        metavar="URL",
        help=_("Where to push (default http://<registry host>); names stay REGISTRY/PATH."),
    ),
    click.option(
        "--jobs",
        type=click.IntRange(1, 32),
        default=4,
        show_default=True,
        help=_("Parallel signing and publishing tasks."),
    ),
    click.option(
        "--yes", "-y", is_flag=True, help=_("Load an archive of another platform without asking.")
    ),
    click.option("--json", "json_output", is_flag=True, help=_("Print the result as JSON.")),
]


def _load_options(func: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_LOAD_OPTIONS):
        func = option(func)
    return func


def _run_load(
    ctx: click.Context,
    *,
    archive_path: Path,
    arch: str,
    target: str | None,
    signer: str | None,
    passphrase_file: Path | None,
    verify_bundle: bool,
    policy_file: Path | None,
    registry_url: str | None,
    jobs: int,
    yes: bool,
    json_output: bool,
    sigstore: bool = False,
) -> None:
    from podsec.registry import load

    env = context.with_json(ctx, json_output)
    request = load.request(
        env.host,
        env.settings,
        archive=archive_path,
        arch=arch,
        target=target,
        signer=signer,
        passphrase_file=passphrase_file,
        sigstore=sigstore,
        verify_bundle=verify_bundle,
        policy_file=policy_file,
        registry_url=registry_url,
        jobs=jobs,
        confirm=_confirm(yes),
    )
    with output.progress(not env.json) as progress:
        result = load.load(env.host, request, progress)
    _report_loaded(env, result)


@click.command(
    "load-sign",
    help=_(
        "Load an archive made by save/save-k8s into registry.local: every image is signed with "
        "SIGNER_EMAIL's key (lookaside-staging), pushed under REGISTRY/PATH (default "
        "registry.local/<the archive's platform>) and checked against the policy before "
        "success is reported. Streams the archive (no unpacked copy); an interrupted load "
        "resumes where it stopped; no image is ever visible unsigned. With --sigstore, "
        "SIGNER_EMAIL is the sigstore private key file instead ('-': "
        "~/.config/podsec/sigstore.key) and the signatures are pushed as registry "
        "attachments."
    ),
    epilog=_(
        "Examples:\n\n"
        "  podsec images load-sign /tmp/oci/amd64.tar.xz amd64 maker@example.org\n\n"
        "  podsec images load-sign amd64.tar.xz amd64 maker@example.org registry.local/c10f\n\n"
        "  podsec images load-sign amd64.tar.zst amd64 maker@example.org "
        "--passphrase-file ~/.pass\n\n"
        "  podsec images load-sign --sigstore amd64.tar.xz amd64 - registry.local/apps"
    ),
)
@click.argument("archive_path", metavar="ARCHIVE", type=click.Path(path_type=Path))
@click.argument("arch", metavar="ARCH")
@click.argument("signer", metavar="SIGNER_EMAIL")
@click.argument("target", metavar="[REGISTRY/PATH]", required=False)
@click.option(
    "--passphrase-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help=_("File with the key's passphrase (else gpg-agent/pinentry)."),
)
@click.option(
    "--sigstore",
    "use_sigstore",
    is_flag=True,
    help=_("Sign with a sigstore key (SIGNER_EMAIL is its file) into registry attachments."),
)
@_load_options
@click.pass_context
def load_sign_cmd(
    ctx: click.Context,
    *,
    archive_path: Path,
    arch: str,
    signer: str,
    target: str | None,
    passphrase_file: Path | None,
    use_sigstore: bool,
    policy_file: Path | None,
    registry_url: str | None,
    jobs: int,
    yes: bool,
    json_output: bool,
) -> None:
    _run_load(
        ctx,
        archive_path=archive_path,
        arch=arch,
        target=target,
        signer=signer,
        sigstore=use_sigstore,
        passphrase_file=passphrase_file,
        verify_bundle=False,
        policy_file=policy_file,
        registry_url=registry_url,
        jobs=jobs,
        yes=yes,
        json_output=json_output,
    )


@click.command(
    "load",
    help=_(
        "Load a signature-carrying archive (save --with-signatures) without re-signing: "
        "with --verify every blob and every carried signature is checked against THIS node's "
        "policy before anything is pushed; a tampered layer or signature pushes nothing. "
        "GPG signatures go to the lookaside staging, sigstore signatures back into the "
        "registry as attachments (registries.d use-sigstore-attachments)."
    ),
    epilog=_(
        "Examples:\n\n  podsec images load --verify /media/usb/amd64.tar.xz amd64\n\n"
        "  podsec images load --verify amd64.tar.xz amd64 registry.local/p10"
    ),
)
@click.argument("archive_path", metavar="ARCHIVE", type=click.Path(path_type=Path))
@click.argument("arch", metavar="ARCH")
@click.argument("target", metavar="[REGISTRY/PATH]", required=False)
@click.option(
    "--verify",
    "verify_bundle",
    is_flag=True,
    help=_("Check the carried signatures first (required)."),
)
@_load_options
@click.pass_context
def load_cmd(
    ctx: click.Context,
    *,
    archive_path: Path,
    arch: str,
    target: str | None,
    verify_bundle: bool,
    policy_file: Path | None,
    registry_url: str | None,
    jobs: int,
    yes: bool,
    json_output: bool,
) -> None:
    if not verify_bundle:
        raise UsageError(
            _("load pushes only verified signature bundles: pass --verify"),
            hint=_("to sign the images yourself, use podsec images load-sign"),
        )
    _run_load(
        ctx,
        archive_path=archive_path,
        arch=arch,
        target=target,
        signer=None,
        passphrase_file=None,
        verify_bundle=True,
        policy_file=policy_file,
        registry_url=registry_url,
        jobs=jobs,
        yes=yes,
        json_output=json_output,
    )


def register(group: click.Group) -> None:
    for command in (save_cmd, save_k8s_cmd, load_sign_cmd, load_cmd):
        group.add_command(command)


save_oci_main = legacy("podsec.cli.archives:save_cmd", "podsec-save-oci")
k8s_save_oci_main = legacy("podsec.cli.archives:save_k8s_cmd", "podsec-k8s-save-oci")
load_sign_oci_main = legacy("podsec.cli.archives:load_sign_cmd", "podsec-load-sign-oci")

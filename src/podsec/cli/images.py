"""``podsec images``: air-gapped archives, loading and signing, signature audit."""

from __future__ import annotations

import click

from podsec.i18n import _


@click.group(help=_("Image archives for air-gapped nodes, loading with signatures, audits."))
def images() -> None:
    pass


# ============================================================================ audit: begin
# podsec images audit (owner: image-trust engineer; the command lives in podsec.cli.trust).
from podsec.cli.trust import audit_cmd as _audit_cmd  # noqa: E402

images.add_command(_audit_cmd)
# ============================================================================ audit: end


# ============================================================================ archives: begin
# save, save-k8s, load-sign, load (owner: archives engineer). Core: podsec.registry.archive,
# .load, .k8s_images. Keep other commands outside this block.
from podsec.cli import archives as _archives  # noqa: E402

_archives.register(images)
save_oci_main = _archives.save_oci_main
k8s_save_oci_main = _archives.k8s_save_oci_main
load_sign_oci_main = _archives.load_sign_oci_main
# ============================================================================ archives: end

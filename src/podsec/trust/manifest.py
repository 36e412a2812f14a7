"""The digest a simple signature signs: computed from the manifest bytes, never taken from
a registry's ``Docker-Content-Digest`` header.

containers/image's ``manifest.Digest``: the sha256 of the bytes, except for a signed
schema1 manifest (JWS "pretty signature"), whose signatures are stripped first.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from podsec.errors import ValidationError
from podsec.i18n import _

SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
_KNOWN = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


def guess_mime_type(data: bytes) -> str:
    """containers/image's GuessMIMEType, far enough to recognise signed schema1."""
    try:
        meta = json.loads(data)
    except ValueError:
        return ""
    if not isinstance(meta, dict):
        return ""
    media = meta.get("mediaType")
    if isinstance(media, str) and media in _KNOWN:
        return media
    if meta.get("schemaVersion") == 1:
        return SCHEMA1_SIGNED if meta.get("signatures") is not None else SCHEMA1
    return ""


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def schema1_payload(data: bytes) -> bytes:
    """The signed schema1 manifest without its JWS signatures (libtrust's
    ParsePrettySignature + Payload): the first ``formatLength`` bytes + ``formatTail``."""

    def bad(why: str) -> ValidationError:
        return ValidationError(_("invalid schema1 manifest signature: {why}").format(why=why))

    doc: Any = json.loads(data)
    blocks = doc.get("signatures")
    if not isinstance(blocks, list):
        raise bad(_("signatures is not a list"))
    length: int | None = None
    tail: bytes | None = None
    for block in blocks:
        try:
            protected = json.loads(_b64url(block["protected"]))
            this_length = protected["formatLength"]
            this_tail = _b64url(protected["formatTail"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(_("protected header")) from exc
        if not isinstance(this_length, int | float):
            raise bad(_("missing formatted length"))
        if length is None or length == 0:
            length = int(this_length)
        elif length != int(this_length):
            raise bad(_("conflicting format length"))
        if not tail:
            tail = this_tail
        elif tail != this_tail:
            raise bad(_("conflicting format tail"))
    length, tail = length or 0, tail or b""
    if length > len(data):
        raise bad(_("invalid format length"))
    return data[:length] + tail


def digest(data: bytes) -> str:
    """``sha256:<hex>`` of the manifest as containers/image computes it."""
    if guess_mime_type(data) == SCHEMA1_SIGNED:
        data = schema1_payload(data)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def matches_digest(data: bytes, expected: str) -> bool:
    try:
        return digest(data) == expected
    except ValidationError:
        return False

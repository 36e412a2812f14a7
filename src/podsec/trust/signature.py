"""Simple-signing ("atomic container signature") in Python, with the gpg CLI.

A signature is an OpenPGP *signed message* (``gpg --sign``, not clearsign, not detached)
whose literal data is the JSON payload::

    {"critical": {"identity": {"docker-reference": REF},
                  "image": {"docker-manifest-digest": DIGEST},
                  "type": "atomic container signature"},
     "optional": {"creator": ..., "timestamp": ...}}

skopeo/podman (containers/image) accept signatures made here, and :func:`verify` +
:func:`matches` apply containers/image's rules: exactly one valid signature by a trusted
key, a strictly formed payload, the manifest digest, and the identity rule of the policy's
``signedIdentity`` (default ``matchRepoDigestOrExact``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podsec import __version__
from podsec.errors import CommandError, PodsecError, ValidationError
from podsec.host.run import run
from podsec.i18n import _
from podsec.trust import reference
from podsec.trust.keys import short_home
from podsec.trust.registries_d import signature_url

SIGNATURE_TYPE = "atomic container signature"
MAX_SIGNATURES = 64
FETCH_TIMEOUT = 15.0


class SignatureError(ValidationError):
    """A signature that does not verify or does not match (the reason is the message)."""


@dataclass(frozen=True)
class VerifiedSignature:
    fingerprint: str
    docker_reference: str
    manifest_digest: str
    creator: str | None = None
    timestamp: int | None = None


def make_payload(
    docker_reference: str, manifest_digest: str, *, timestamp: int | None = None
) -> bytes:
    """The simple-signing JSON payload (compact, sorted keys like containers/image)."""
    payload = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": {
            "creator": f"podsec {__version__}",
            "timestamp": int(time.time()) if timestamp is None else timestamp,
        },
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


@contextmanager
def _scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="podsec-sig.") as tmp:
        path = Path(tmp)
        path.chmod(0o700)
        yield path


def sign(
    payload: bytes, key_id: str, gnupg_home: Path | None, passphrase: str | None = None
) -> bytes:
    """Sign ``payload`` with ``key_id`` from ``gnupg_home`` (None: the caller's GNUPGHOME).

    The passphrase goes to gpg on stdin (loopback pinentry), never on the command line.
    """
    with short_home(gnupg_home) as home, _scratch() as tmp:
        env = {"GNUPGHOME": str(home)} if home is not None else None
        data, out = tmp / "payload", tmp / "signature"
        data.write_bytes(payload)
        argv = ["gpg", "--batch", "--no-tty", "--local-user", key_id]
        if passphrase is not None:
            argv += ["--pinentry-mode", "loopback", "--passphrase-fd", "0"]
        argv += ["--output", str(out), "--sign", str(data)]
        try:
            run(argv, extra_env=env, input=passphrase, timeout=60)
            if home is not None and home != gnupg_home:
                run(["gpgconf", "--kill", "all"], extra_env=env, check=False, timeout=30)
        except CommandError as exc:
            raise PodsecError(
                _("cannot sign with key {key}: {err}").format(key=key_id, err=exc.stderr or exc),
                hint=_("check the key id, the GNUPGHOME and the passphrase"),
            ) from exc
        return out.read_bytes()


def _status(lines: str) -> list[list[str]]:
    return [line.split()[1:] for line in lines.splitlines() if line.startswith("[GNUPG:] ")]


def verify(signature: bytes, public_keys: Sequence[Path]) -> VerifiedSignature:
    """Check ``signature`` against ``public_keys`` in a throw-away keyring.

    Raises :class:`SignatureError` unless exactly one good signature by one of the keys is
    present and the payload is a well-formed simple-signing payload.
    """
    if not signature:
        raise SignatureError(_("empty signature"))
    if signature[:1] == b"-":
        raise SignatureError(
            _("unrecognized signature format, starting with binary 0x2d (armored text)")
        )
    with _scratch() as tmp:
        home = tmp / "gnupg"
        home.mkdir(mode=0o700)
        env = {"GNUPGHOME": str(home)}
        base = ["gpg", "--batch", "--no-tty", "--no-autostart", "--no-options"]
        for key in public_keys:
            try:
                run([*base, "--import", str(key)], extra_env=env, timeout=30)
            except CommandError as exc:
                raise SignatureError(
                    _("cannot import public key {key}: {err}").format(key=key, err=exc.stderr)
                ) from exc
        sig_file, out, status = tmp / "sig", tmp / "payload", tmp / "status"
        sig_file.write_bytes(signature)
        result = run(
            [
                *base,
                "--status-file",
                str(status),
                "--output",
                str(out),
                "--decrypt",
                str(sig_file),
            ],
            extra_env=env,
            timeout=30,
            check=False,
        )
        records = _status(status.read_text(errors="replace")) if status.exists() else []
        valid = [r for r in records if r and r[0] == "VALIDSIG"]
        bad = [
            r
            for r in records
            if r and r[0] in ("BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG")
        ]
        if bad:
            kind, keyid = bad[0][0], bad[0][1] if len(bad[0]) > 1 else "?"
            if kind == "ERRSIG":
                raise SignatureError(
                    _("Invalid GPG signature: signed by key {key}, which is not trusted").format(
                        key=keyid
                    )
                )
            raise SignatureError(
                _("Invalid GPG signature: {kind} by key {key}").format(kind=kind, key=keyid)
            )
        if len(valid) != 1 or result.returncode != 0 or not out.exists():
            raise SignatureError(
                _("Unexpected GPG signature count {count}").format(count=len(valid))
            )
        # VALIDSIG <fpr> ... the last field (10th) is the primary key fingerprint
        fields = valid[0]
        fingerprint = fields[-1] if len(fields) >= 10 else fields[1]
        return _parse_payload(out.read_bytes(), fingerprint)


def _parse_payload(data: bytes, fingerprint: str) -> VerifiedSignature:
    def fail(what: str) -> SignatureError:
        return SignatureError(_("invalid signature payload: {what}").format(what=what))

    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise fail(_("not JSON")) from exc
    if not isinstance(doc, dict) or set(doc) - {"critical", "optional"} or "critical" not in doc:
        raise fail(_("unexpected top-level fields"))
    critical: Any = doc["critical"]
    if not isinstance(critical, dict) or set(critical) != {"identity", "image", "type"}:
        raise fail(_("critical must have exactly identity, image and type"))
    if critical["type"] != SIGNATURE_TYPE:
        raise fail(_("unexpected type {kind!r}").format(kind=critical["type"]))
    image, identity = critical["image"], critical["identity"]
    if not isinstance(image, dict) or set(image) != {"docker-manifest-digest"}:
        raise fail("critical.image")
    if not isinstance(identity, dict) or set(identity) != {"docker-reference"}:
        raise fail("critical.identity")
    digest, ref = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not isinstance(ref, str):
        raise fail(_("digest and reference must be strings"))
    optional = doc.get("optional") or {}
    creator = optional.get("creator") if isinstance(optional, dict) else None
    stamp = optional.get("timestamp") if isinstance(optional, dict) else None
    return VerifiedSignature(
        fingerprint,
        ref,
        digest,
        creator if isinstance(creator, str) else None,
        stamp if isinstance(stamp, int) else None,
    )


def matches(
    verified: VerifiedSignature,
    image_ref: str,
    manifest_digest: str,
    signed_identity: dict[str, Any] | None = None,
) -> bool:
    """True when the signature is for this manifest and its identity is accepted by the
    policy's ``signedIdentity`` rule (containers/image semantics)."""
    return mismatch(verified, image_ref, manifest_digest, signed_identity) is None


def mismatch(
    verified: VerifiedSignature,
    image_ref: str,
    manifest_digest: str,
    signed_identity: dict[str, Any] | None = None,
) -> str | None:
    """None when the signature matches, else c/image's reason text."""
    if verified.manifest_digest != manifest_digest:
        return _("Signature for digest {signed} does not match image digest {digest}").format(
            signed=verified.manifest_digest, digest=manifest_digest
        )
    try:
        signed = reference.parse(verified.docker_reference)
    except PodsecError:
        return _("Invalid docker reference {ref!r} in signature").format(
            ref=verified.docker_reference
        )
    image = reference.parse(image_ref)
    rule = (signed_identity or {}).get("type", "matchRepoDigestOrExact")
    ident = signed_identity or {}
    ok: bool
    if rule == "matchExact":
        ok = (image.tag is not None or image.digest is not None) and str(image) == str(signed)
    elif rule == "matchRepoDigestOrExact":
        ok = _repo_digest_or_exact(image, signed)
    elif rule == "matchRepository":
        ok = image.name == signed.name
    elif rule == "exactReference":
        ok = str(reference.parse(ident["dockerReference"])) == str(signed)
    elif rule == "exactRepository":
        ok = reference.parse(ident["dockerRepository"]).name == signed.name
    elif rule == "remapIdentity":
        ok = _repo_digest_or_exact(_remap(image, ident), signed)
    else:
        return _("unknown identity rule {rule}").format(rule=rule)
    if not ok:
        return _("Signature for identity {ref} is not accepted").format(
            ref=verified.docker_reference
        )
    return None


def _repo_digest_or_exact(image: reference.DockerRef, signed: reference.DockerRef) -> bool:
    if image.digest is not None:
        return image.name == signed.name
    if image.tag is not None:
        return str(image) == str(signed)
    return False


def _remap(image: reference.DockerRef, ident: dict[str, Any]) -> reference.DockerRef:
    prefix, signed_prefix = str(ident["prefix"]), str(ident["signedPrefix"])
    name = image.name
    if name == prefix or name.startswith(prefix.rstrip("/") + "/"):
        new_name = signed_prefix + name[len(prefix) :]
        remapped = reference.parse(new_name)
        return reference.DockerRef(remapped.domain, remapped.path, image.tag, image.digest)
    return image


def fetch_signatures(
    lookaside_base: str, repo_path: str, digest: str, *, timeout: float = FETCH_TIMEOUT
) -> list[bytes]:
    """Read ``signature-1``, ``-2`` … until the first miss (http(s):// or file://)."""
    out: list[bytes] = []
    for index in range(1, MAX_SIGNATURES + 1):
        url = signature_url(lookaside_base, repo_path, digest, index)
        data = _read_url(url, timeout)
        if data is None:
            break
        out.append(data)
    return out


def _read_url(url: str, timeout: float) -> bytes | None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        path = Path(urllib.parse.unquote(parsed.path))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PodsecError(_("cannot read {url}: {err}").format(url=url, err=exc)) from exc
    if parsed.scheme not in ("http", "https"):
        raise PodsecError(_("unsupported lookaside URL {url}").format(url=url))
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - scheme checked
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise PodsecError(_("reading {url}: HTTP {code}").format(url=url, code=exc.code)) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PodsecError(
            _("cannot reach {url}: {err}").format(url=url, err=reason),
            hint=_("is sigstore.local running (podsec services status)?"),
        ) from exc


def store_signature(staging_dir: Path, repo_path: str, digest: str, signature: bytes) -> Path:
    """Write the next ``signature-N`` (contiguous numbering) under a file:// staging dir;
    an identical existing signature is not written twice."""
    algo, _sep, hexpart = digest.partition(":")
    target = staging_dir / f"{repo_path.strip('/')}@{algo}={hexpart}"
    target.mkdir(parents=True, exist_ok=True)
    index = 1
    while (target / f"signature-{index}").exists():
        if (target / f"signature-{index}").read_bytes() == signature:
            return target / f"signature-{index}"
        index += 1
    path = target / f"signature-{index}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signature)
    return path

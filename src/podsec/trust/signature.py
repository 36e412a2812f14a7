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

Kept as one module over 500 lines: one format, the simple-signing signature — its payload
rules, gpg signing/verification and the lookaside file names must agree byte for byte.
(The lookaside I/O, fetch_signatures/store_signature, could become trust/lookaside.py; left
to the trust issue, which owns the verification engine.)
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
from podsec.errors import CommandError, PodsecError, UsageError, ValidationError
from podsec.host.run import run
from podsec.i18n import _
from podsec.trust import reference
from podsec.trust.keys import short_home
from podsec.trust.registries_d import signature_url

SIGNATURE_TYPE = "atomic container signature"
MAX_SIGNATURES = 128  # containers/image's maxLookasideSignatures
FETCH_TIMEOUT = 15.0


class SignatureError(ValidationError):
    """A signature that does not verify or does not match (the reason is the message)."""


class PayloadError(SignatureError):
    """A payload containers/image would refuse to parse."""


@dataclass(frozen=True)
class VerifiedSignature:
    fingerprint: str
    docker_reference: str
    manifest_digest: str
    creator: str | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class Claims:
    """What a signature says about itself, read WITHOUT verifying it (containers/image's
    ``GetUntrustedSignatureInformationWithoutVerifying``): for explaining a refusal only."""

    key_id: str | None = None  # the signing key (fingerprint when gpg reports it)
    docker_reference: str | None = None
    manifest_digest: str | None = None
    creator: str | None = None
    timestamp: int | None = None
    problem: str | None = None  # why the payload could not be read, if it could not


@dataclass(frozen=True)
class Examined:
    """One gpg pass over a signature: the verified contents or the refusal, and the claims."""

    verified: VerifiedSignature | None
    error: str | None
    claims: Claims


def sig_dir_name(repo_path: str, digest: str) -> str:
    """The lookaside folder of an image: ``<repo path>@<algo>=<hex>`` (containers/image's
    ``lookasideStorageURL``; the repository path has no host, tag or digest)."""
    problem = reference.digest_problem(digest)
    if problem is not None:  # a digest like sha256:../.. must never become a path
        raise SignatureError(
            _("invalid manifest digest {digest!r}: {err}").format(digest=digest, err=problem)
        )
    algo, _sep, hexpart = digest.partition(":")
    return f"{repo_path.strip('/')}@{algo}={hexpart}"


def blob_problem(blob: bytes) -> str | None:
    """None if ``blob`` is a signature containers/image can parse (``signature.FromBlob``),
    else its error; such an error refuses the image whatever the other signatures say."""
    if not blob:
        return "empty signature blob"
    first = blob[0]
    if first in _OPENPGP_FIRST_BYTES:
        return None
    if first == 0:
        fmt, sep, _chunk = blob[1:].partition(b"\n")
        if not sep:
            return "invalid signature format, missing newline"
        for b in fmt:
            if b < 32 or b >= 0x7F:
                return f"invalid signature format, non-ASCII byte {b:#x}"
        if fmt == b"simple-signing":
            return None
        if fmt == b"sigstore-json":
            from podsec.trust import sigstore

            return sigstore.chunk_problem(blob)
        return f"unrecognized signature format {fmt.decode()!r}"
    return f"unrecognized signature format, starting with binary {first:#x}"


def is_sigstore(blob: bytes) -> bool:
    """A ``sigstore-json`` blob (a cosign signature or other attachment)."""
    return blob[:1] == b"\0" and blob[1:].partition(b"\n")[0] == b"sigstore-json"


def simple_signing_body(blob: bytes) -> bytes | None:
    """The OpenPGP message of a simple signature (None for a sigstore one)."""
    if blob[:1] == b"\0":
        fmt, _sep, chunk = blob[1:].partition(b"\n")
        return chunk if fmt == b"simple-signing" else None
    return blob


# OpenPGP packets a simple signature may start with (containers/image's FromBlob list):
# compressed data, one-pass signature and signature packets, old and new formats.
_OPENPGP_FIRST_BYTES = frozenset(
    (0xA0, 0xA1, 0xA2, 0xA3, 0xC8, 0x90, 0x91, 0x92, 0x3D, 0xC4, 0x88, 0x89, 0x8A, 0x8B, 0xC2)
)


def make_payload(
    docker_reference: str, manifest_digest: str, *, timestamp: int | None = None
) -> bytes:
    """The simple-signing JSON payload (compact, sorted keys like containers/image)."""
    if not docker_reference or not manifest_digest:
        # containers/image: "Unexpected empty signature content"
        raise SignatureError(_("refusing to sign an empty reference or digest"))
    problem = reference.digest_problem(manifest_digest)
    if problem is not None:
        raise SignatureError(
            _("invalid manifest digest {digest!r}: {err}").format(
                digest=manifest_digest, err=problem
            )
        )
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
    if passphrase is not None and ("\n" in passphrase or "\r" in passphrase):
        # gpg would read only up to the line break (containers/image refuses it too)
        raise UsageError(_("invalid passphrase: must not contain a line break"))
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


_BASE = ("gpg", "--batch", "--no-tty", "--no-autostart", "--no-options")


def import_keys(home: Path, keys: Sequence[bytes | Path]) -> list[str]:
    """Import public keys into a scratch keyring; the primary fingerprints imported."""
    env = {"GNUPGHOME": str(home)}
    for index, key in enumerate(keys):
        path = key if isinstance(key, Path) else home / f"key-{index}.pgp"
        if not isinstance(key, Path):
            path.write_bytes(key)
        # data that holds no key imports nothing: "No public keys imported" decides later
        run([*_BASE, "--import", str(path)], extra_env=env, timeout=30, check=False)
    listed = run(
        [*_BASE, "--with-colons", "--fingerprint", "--list-keys"],
        extra_env=env,
        timeout=30,
        check=False,
    )
    out, primary = [], False
    for line in listed.stdout.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            primary = True
        elif fields[0] == "sub":
            primary = False
        elif fields[0] == "fpr" and primary and len(fields) > 9:
            out.append(fields[9])
            primary = False
    return out


def _gpg_decrypt(
    body: bytes, public_keys: Sequence[bytes | Path]
) -> tuple[list[str], list[list[str]], bytes, int]:
    """One gpg pass in a throw-away keyring: (trusted primary fingerprints, status records,
    the literal data gpg wrote — even when it could not trust it —, exit code)."""
    with _scratch() as tmp:
        home = tmp / "gnupg"
        home.mkdir(mode=0o700)
        env = {"GNUPGHOME": str(home)}
        trusted = import_keys(home, public_keys) if public_keys else []
        sig_file, out, status = tmp / "sig", tmp / "payload", tmp / "status"
        sig_file.write_bytes(body)
        result = run(
            [
                *_BASE,
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
        data = out.read_bytes() if out.exists() else b""
    return trusted, records, data, result.returncode


def _verdict(
    trusted: list[str], records: list[list[str]], data: bytes, rc: int
) -> tuple[bytes, str]:
    """(signed content, primary fingerprint) as a GPG mechanism's Verify, or SignatureError."""
    if not trusted:
        raise SignatureError(_("No public keys imported"))
    valid = [r for r in records if r and r[0] == "VALIDSIG"]
    bad = [
        r for r in records if r and r[0] in ("BADSIG", "ERRSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG")
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
    if len(valid) != 1 or rc != 0 or not data:
        raise SignatureError(_("Unexpected GPG signature count {count}").format(count=len(valid)))
    fingerprint = _primary(valid[0])
    if fingerprint not in trusted:
        raise SignatureError(_("signature by key {key} is not accepted").format(key=fingerprint))
    return data, fingerprint


def gpg_verify(signature: bytes, public_keys: Sequence[bytes | Path]) -> tuple[bytes, str]:
    """A GPG mechanism's Verify: (signed content, primary key fingerprint) of a signature by
    exactly one of ``public_keys``; SignatureError otherwise. The content is not parsed."""
    problem = blob_problem(signature)
    if problem is not None:
        raise SignatureError(problem)
    body = simple_signing_body(signature)
    if body is None:
        raise SignatureError(_("a sigstore signature is not a simple signature"))
    return _verdict(*_gpg_decrypt(body, public_keys))


def examine(signature: bytes, public_keys: Sequence[bytes | Path]) -> Examined:
    """Verify ``signature`` with ``public_keys`` in a throw-away keyring, and read its
    claims in the same gpg pass (gpg writes the payload even when it cannot trust it)."""
    problem = blob_problem(signature)
    if problem is not None:
        return Examined(None, problem, Claims(problem=problem))
    body = simple_signing_body(signature)
    if body is None:
        why = _("a sigstore signature is not a simple signature")
        return Examined(None, why, Claims(problem=why))
    try:
        trusted, records, data, rc = _gpg_decrypt(body, public_keys)
    except SignatureError as exc:
        return Examined(None, exc.message, Claims())
    claims = _claims(records, data)
    try:
        content, fingerprint = _verdict(trusted, records, data, rc)
        return Examined(_parse_payload(content, fingerprint), None, claims)
    except SignatureError as exc:
        return Examined(None, exc.message, claims)


def _primary(validsig: list[str]) -> str:
    """The primary key fingerprint of a VALIDSIG record (the signing key's otherwise)."""
    return validsig[10] if len(validsig) > 10 else validsig[1]


def _claims(records: list[list[str]], data: bytes) -> Claims:
    key_id = None
    for r in records:
        if r and r[0] == "VALIDSIG":
            key_id = _primary(r)
        elif r and r[0] == "ERRSIG" and len(r) > 1 and key_id is None:
            key_id = r[7] if len(r) > 7 and len(r[7]) == 40 else r[1]
        elif r and r[0] in ("GOODSIG", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG"):
            key_id = key_id or (r[1] if len(r) > 1 else None)
    if not data:
        return Claims(key_id, problem=_("no payload could be read"))
    try:
        p = parse_payload(data)
    except PayloadError as exc:
        return Claims(key_id, problem=exc.message)
    return Claims(key_id, p.docker_reference, p.manifest_digest, p.creator, p.timestamp)


def read_claims(signature: bytes) -> Claims:
    """The claims of a signature, without verifying it."""
    return examine(signature, ()).claims


def verify(signature: bytes, public_keys: Sequence[bytes | Path]) -> VerifiedSignature:
    """Check ``signature`` against ``public_keys`` in a throw-away keyring.

    Raises :class:`SignatureError` unless exactly one good signature by one of the keys is
    present and the payload is a well-formed simple-signing payload.
    """
    result = examine(signature, public_keys)
    if result.verified is None:
        raise SignatureError(result.error or _("signature not verified"))
    return result.verified


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs: duplicates stay visible."""


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Pairs:
    return _Pairs(pairs)


def _object(value: Any, where: str, exact: tuple[str, ...] | None = None) -> dict[str, Any]:
    """containers/image's ParanoidUnmarshalJSONObject(ExactFields): a JSON object without
    duplicate keys and, with ``exact``, with exactly those keys."""
    if not isinstance(value, _Pairs):
        raise PayloadError(_("{where}: JSON object expected").format(where=where))
    out: dict[str, Any] = {}
    for key, item in value:
        if key in out:
            raise PayloadError(_("{where}: duplicate key {key!r}").format(where=where, key=key))
        if exact is not None and key not in exact:
            raise PayloadError(_("{where}: unknown key {key!r}").format(where=where, key=key))
        out[key] = item
    for key in exact or ():
        if key not in out:
            raise PayloadError(
                _("{where}: key {key!r} missing in a JSON object").format(where=where, key=key)
            )
    return out


def _string(value: Any, where: str) -> str:
    # Go decodes JSON null into a string as "" (no error)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(_("{where}: expected a string").format(where=where))
    return value


@dataclass(frozen=True)
class Payload:
    """A parsed simple-signing payload (not yet trusted: it says what the signer claims)."""

    docker_reference: str
    manifest_digest: str
    creator: str | None = None
    timestamp: int | None = None


def parse_payload(
    data: bytes, *, kind: str = SIGNATURE_TYPE, optional_may_be_null: bool = False
) -> Payload:
    """Parse a payload as strictly as containers/image (``untrustedSignature``): exactly
    ``critical`` and ``optional``, no duplicate key at any level it reads, exact fields in
    ``critical``, a valid digest, an integer timestamp. A sigstore payload has another
    ``kind`` and may have ``"optional": null`` (``UntrustedSigstorePayload``)."""
    try:
        doc = json.loads(data, object_pairs_hook=_pairs_hook)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(_("not JSON: {err}").format(err=exc)) from exc
    top = _object(doc, _("payload"), ("critical", "optional"))
    if optional_may_be_null and top["optional"] is None:
        optional: dict[str, Any] = {}
    else:
        optional = _object(top["optional"], "optional")
    creator = timestamp = None
    if "creator" in optional:
        creator = _string(optional["creator"], "optional.creator")
    if "timestamp" in optional:
        stamp = optional["timestamp"]
        if stamp is None:
            stamp = 0
        if isinstance(stamp, bool) or not isinstance(stamp, int | float):
            raise PayloadError(_("optional.timestamp: expected a number"))
        if isinstance(stamp, float) and not stamp.is_integer():
            raise PayloadError(_("Field optional.timestamp is not an integer"))
        timestamp = int(stamp)
    critical = _object(top["critical"], "critical", ("type", "image", "identity"))
    claimed = _string(critical["type"], "critical.type")
    if claimed != kind:
        raise PayloadError(_("Unrecognized signature type {kind}").format(kind=claimed))
    image = _object(critical["image"], "critical.image", ("docker-manifest-digest",))
    digest = _string(image["docker-manifest-digest"], "critical.image.docker-manifest-digest")
    problem = reference.digest_problem(digest)
    if problem is not None:
        raise PayloadError(
            _("invalid docker-manifest-digest value {digest!r}: {err}").format(
                digest=digest, err=problem
            )
        )
    identity = _object(critical["identity"], "critical.identity", ("docker-reference",))
    ref = _string(identity["docker-reference"], "critical.identity.docker-reference")
    return Payload(ref, digest, creator, timestamp)


def _parse_payload(data: bytes, fingerprint: str) -> VerifiedSignature:
    try:
        payload = parse_payload(data)
    except PayloadError as exc:
        raise SignatureError(
            _("invalid signature payload: {what}").format(what=exc.message)
        ) from exc
    return VerifiedSignature(
        fingerprint,
        payload.docker_reference,
        payload.manifest_digest,
        payload.creator,
        payload.timestamp,
    )


def fetch_signatures(
    lookaside_base: str, repo_path: str, digest: str, *, timeout: float = FETCH_TIMEOUT
) -> list[bytes]:
    """Read ``signature-1``, ``-2`` … until the first miss (http(s):// or file://)."""
    out: list[bytes] = []
    for index in range(1, MAX_SIGNATURES + 1):
        url = signature_url(lookaside_base, repo_path, digest, index)
        data = _read_url(url, timeout)
        if data is None:
            return out
        out.append(data)
    raise PodsecError(
        _("server provided {n} signatures, assuming that's unreasonable and a server error").format(
            n=MAX_SIGNATURES
        )
    )


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
        raise PodsecError(_("Unsupported scheme when reading signature from {url}").format(url=url))
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
    an identical existing signature is not written twice.

    The bytes go to a temporary file first, which is then hard-linked under the free name
    (``link`` fails if a concurrent writer took it: the next number is tried): a reader —
    or a process killed mid-write — never sees a partial ``signature-N``."""
    target = staging_dir / sig_dir_name(repo_path, digest)
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".signature.", dir=target)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(signature)
            fh.flush()
            os.fsync(fh.fileno())
        index = 1
        while True:
            path = target / f"signature-{index}"
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                if path.read_bytes() == signature:
                    return path
                index += 1
    finally:
        tmp.unlink(missing_ok=True)

"""``signedIdentity`` rules: does a signature's claimed reference fit the image?

containers/image's ``signature/policy_reference_match.go``, rule for rule (its test table is
in ``tests/conformance``). ``intended`` is the image's own docker reference as its
transport knows it (None when the transport has none, e.g. a ``dir:`` image).
"""

from __future__ import annotations

from typing import Any

from podsec.trust import reference
from podsec.trust.reference import DockerRef, ReferenceError

DEFAULT_RULE = "matchRepoDigestOrExact"


def _parse(text: str) -> DockerRef | None:
    try:
        return reference.parse_normalized(text)
    except ReferenceError:
        return None


def repo_digest_or_exact(intended: DockerRef, signed: DockerRef) -> bool:
    """``matchRepoDigestOrExactReferenceValues``: a tagged image (tag+digest included)
    needs the exact reference; a digest-only image accepts any tag or digest of its
    repository; a signature without tag or digest never matches."""
    if signed.name_only:
        return False
    if intended.tag is not None:
        return str(signed) == str(intended)
    if intended.digest is not None:
        return signed.name == intended.name
    return False


def _prefix_matches(name: str, prefix: str) -> bool:
    if len(name) < len(prefix):
        return False
    if len(name) == len(prefix):
        return name == prefix
    return name.startswith(prefix) and name[len(prefix)] == "/"


def remap(intended: DockerRef, prefix: str, signed_prefix: str) -> DockerRef | None:
    """The image's reference with ``prefix`` rewritten to ``signed_prefix``; None when the
    result is not a canonical reference (containers/image fails the match then)."""
    if not _prefix_matches(intended.name, prefix):
        return intended
    rewritten = str(intended).replace(prefix, signed_prefix, 1)
    try:
        return reference.parse_named(rewritten)
    except ReferenceError:
        return None


def matches(rule: dict[str, Any] | None, intended: DockerRef | None, signed_text: str) -> bool:
    """True when the policy's ``rule`` accepts a signature claiming ``signed_text``."""
    kind = (rule or {}).get("type", DEFAULT_RULE)
    if kind == "exactReference":
        wanted, signed = _parse(str(rule["dockerReference"])), _parse(signed_text)  # type: ignore[index]
        if wanted is None or signed is None or wanted.name_only or signed.name_only:
            return False
        return str(signed) == str(wanted)
    if kind == "exactRepository":
        wanted, signed = _parse(str(rule["dockerRepository"])), _parse(signed_text)  # type: ignore[index]
        return wanted is not None and signed is not None and signed.name == wanted.name
    if intended is None:
        return False  # "no known Docker reference identity"
    signed = _parse(signed_text)
    if signed is None:
        return False
    if kind == "matchExact":
        if intended.name_only or signed.name_only:
            return False
        return str(signed) == str(intended)
    if kind == "matchRepoDigestOrExact":
        return repo_digest_or_exact(intended, signed)
    if kind == "matchRepository":
        return signed.name == intended.name
    if kind == "remapIdentity":
        assert rule is not None
        remapped = remap(intended, str(rule["prefix"]), str(rule["signedPrefix"]))
        return remapped is not None and repo_digest_or_exact(remapped, signed)
    return False

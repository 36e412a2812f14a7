"""``podsec policy create``: the container trust configuration of a node.

On the registry node the policy is built here (reject by default, registry.local only with
the image makers' keys, local transports accepted) and published in /var/sigstore/keys/
for the other nodes. On any other node the published policy and keys are fetched from
``http://sigstore.local:81/keys/`` and installed only when every file is covered by a pin
given with ``--trust`` (a key fingerprint or the sha256 of a file) — the original trusted
plain HTTP. Every write is atomic with a ``.podsec-bak`` backup; a second run changes
nothing.

Kept as one module over 500 lines: one command's job (the node's trust configuration,
built or fetched, pinned and installed), each step used only by it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from podsec.errors import PodsecError, UsageError, ValidationError
from podsec.host import accounts, etc_hosts, files, sysctl
from podsec.host.paths import Host
from podsec.i18n import _
from podsec.names import (
    GROUP_PODMAN,
    GROUP_PODMAN_DEV,
    KEYS_URL,
    LOOKASIDE_URL,
    REGISTRY_HOST,
    SIGSTORE_HOST,
    SYSTEM_REGISTRIES_D,
    TRIVY_HOST,
)
from podsec.progress import NULL_PROGRESS, Progress
from podsec.trust import keys as gpgkeys
from podsec.trust import policy as pol
from podsec.trust import reference
from podsec.trust import registries_d as rd

HOST_NAMES = [REGISTRY_HOST, SIGSTORE_HOST, TRIVY_HOST]
SIGSTORE_ROOT = "/var/sigstore"
KEYS_DIR = "/var/sigstore/keys"
SIGNATURES_DIR = "/var/sigstore/sigstore"
STAGING = "file:///var/sigstore/sigstore/"
PUBLISHED_POLICY = "/var/sigstore/keys/policy.json"
REGISTRIES_D_FILE = "/etc/containers/registries.d/default.yaml"
REGISTRIES_CONF_DROPIN = "/etc/containers/registries.conf.d/podsec.conf"
CONTAINERS_CONF_DROPIN = "/etc/containers/containers.conf.d/podsec.conf"
SYSCTL_FILE = "99-podman.conf"
# The system policy accepts one local transport: podman reads containers-storage to push, and
# what is in local storage already passed the policy. Archives and directories (dir, oci,
# oci-archive, docker-archive) are refused: they bring in images no signature vouches for
# (check-policy rule 105). Image makers, who need them, get a policy of their own.
LOCAL_TRANSPORTS = ("containers-storage",)
# what podsec's system policy accepted before: dropped on the next `policy create`
FORMER_TRANSPORTS = ("dir", "docker-archive", "oci", "oci-archive")
_FPR_RE = re.compile(r"^[0-9A-Fa-f]{40}$|^[0-9A-Fa-f]{64}$")
_SHA_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_KEY_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+\.(pgp|gpg|asc|pub)")  # fullmatch: no trailing newline
HEADER = "Written by podsec policy create; podsec keeps a .podsec-bak of what it replaces."


@dataclass(frozen=True)
class Pins:
    fingerprints: frozenset[str] = frozenset()
    sha256: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.fingerprints and not self.sha256


@dataclass(frozen=True)
class PolicyReport:
    address: str
    registry_node: bool
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    pins: tuple[str, ...] = field(default_factory=tuple)


def parse_pins(values: Sequence[str]) -> Pins:
    fprs, shas = set(), set()
    for value in values:
        v = value.strip()
        if _SHA_RE.match(v.lower()):
            shas.add(v.lower())
        elif _FPR_RE.match(v.replace(" ", "")):
            fprs.add(v.replace(" ", "").upper())
        else:
            raise UsageError(
                _("--trust {value!r}: expected a 40-hex key fingerprint or sha256:HEX").format(
                    value=value
                )
            )
    return Pins(frozenset(fprs), frozenset(shas))


def check_address(address: str) -> str:
    """A unicast IP address other than 127.0.0.1 (refused as in the original)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise UsageError(_("{address}: not an IP address").format(address=address)) from exc
    if str(ip) == "127.0.0.1":
        raise UsageError(
            _("127.0.0.1 cannot be the registry address: other nodes could not reach it"),
            hint=_("give the node's own static address (e.g. 192.168.1.10)"),
        )
    mapped = getattr(ip, "ipv4_mapped", None)
    effective = mapped if mapped is not None else ip
    # the same rule in every spelling of "this host only" (::1, ::ffff:127.0.0.1) and for
    # link-local addresses (fe80::1%eth0, 169.254/16: one link only); other 127/8 addresses
    # stay allowed — the test environment gives each run its own
    if (
        str(effective) in ("127.0.0.1", "::1")
        or effective.is_link_local
        or getattr(ip, "scope_id", None)
    ):
        raise UsageError(
            _("{address} cannot be the registry address: other nodes could not reach it").format(
                address=address
            ),
            hint=_("give the node's own static address (e.g. 192.168.1.10)"),
        )
    if (
        effective.is_unspecified
        or effective.is_multicast
        or effective.is_reserved
        or str(effective) == "255.255.255.255"
    ):
        raise UsageError(_("{address}: not a usable unicast address").format(address=address))
    return str(ip)


def is_local_address(address: str) -> bool:
    """True when ``address`` belongs to this machine (binding to it succeeds)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


def base_policy(
    makers: dict[str, tuple[str, ...]] | None = None,
) -> pol.Policy:
    """Reject by default; local transports accepted; each docker scope signed by its keys:
    ``signedBy`` its GPG keys (``*.pgp``), ``sigstoreSigned`` its sigstore keys (``*.pub``),
    both when it has both kinds (containers/image then requires one signature of each)."""
    transports: dict[str, pol.Scopes] = {"docker": {}}
    for scope, key_paths in sorted((makers or {}).items()):
        gpg = [k for k in key_paths if not k.endswith(pol.SIGSTORE_KEY_SUFFIX)]
        cosign = [k for k in key_paths if k.endswith(pol.SIGSTORE_KEY_SUFFIX)]
        reqs = []
        if gpg:
            reqs.append(pol.signed_by(gpg[0] if len(gpg) == 1 else gpg))
        if cosign:
            reqs.append(pol.sigstore_signed(cosign[0] if len(cosign) == 1 else cosign))
        transports["docker"][scope] = tuple(reqs)
    for t in LOCAL_TRANSPORTS:
        transports[t] = {"": (pol.accept(),)}
    return pol.Policy((pol.reject(),), transports)


def signed_scopes(policy: pol.Policy) -> dict[str, tuple[str, ...]]:
    """registry.local scopes and their key paths (GPG and sigstore), from an existing
    podsec policy."""
    out: dict[str, tuple[str, ...]] = {}
    for scope, reqs in policy.transports.get("docker", {}).items():
        if scope == REGISTRY_HOST or scope.startswith(REGISTRY_HOST + "/"):
            kinds = (pol.SIGNED_BY, pol.SIGSTORE_SIGNED)
            paths = tuple(k for r in reqs if r.type in kinds for k in r.keys)
            if paths:
                out[scope] = paths
    return out


def load_system_policy(host: Host) -> pol.Policy | None:
    path = host.path(pol.SYSTEM_POLICY)
    if not path.exists() and not path.is_symlink():
        return None  # a symlink (a loop, a dangling one) is read, and refused, not replaced
    return pol.load(path, pol.SYSTEM_POLICY)


def merged_policy(host: Host) -> pol.Policy:
    """The policy podsec wants, keeping the signers already configured (and any other
    docker scope the administrator added)."""
    current = load_system_policy(host)
    if current is None:
        return base_policy()
    wanted = base_policy(signed_scopes(current))
    docker = dict(current.transports.get("docker", {}))
    docker.update(wanted.transports["docker"])
    transports = {**without_former(current).transports, **wanted.transports, "docker": docker}
    return pol.Policy((pol.reject(),), transports)


def without_former(policy: pol.Policy) -> pol.Policy:
    """``policy`` without the archive transports an earlier podsec accepted wholesale
    (exactly ``{"": [insecureAcceptAnything]}``); an administrator's own rules stay."""
    transports = {
        t: scopes
        for t, scopes in policy.transports.items()
        if not (
            t in FORMER_TRANSPORTS
            and list(scopes) == [""]
            and [r.type for r in scopes[""]] == [pol.ACCEPT]
        )
    }
    return pol.Policy(policy.default, transports)


def maker_policy(system: pol.Policy) -> pol.Policy:
    """An image maker's own ``~/.config/containers/policy.json``: unrestricted, as in the
    seed (makers pull, tag and build from third-party images and load archives), except that
    registry.local is still accepted only signed by the makers' keys."""
    docker = {
        s: reqs
        for s, reqs in system.transports.get("docker", {}).items()
        if s == REGISTRY_HOST or s.startswith(REGISTRY_HOST + "/")
    }
    return pol.Policy((pol.accept(),), {"docker": docker} if docker else {})


def write_policy(host: Host, policy: pol.Policy, *, publish: bool) -> list[str]:
    """Install the system policy (and its published copy on the registry node)."""
    text = pol.render(policy)
    pol.parse(text, "generated policy")  # never write what we would refuse to read
    changed = []
    if files.atomic_write(host.path(pol.SYSTEM_POLICY), text, mode=0o644):
        changed.append(pol.SYSTEM_POLICY)
    if publish and files.atomic_write(host.path(PUBLISHED_POLICY), text, mode=0o644):
        changed.append(PUBLISHED_POLICY)
    return changed


def registries_d_text(host: Host, policy: pol.Policy | None = None) -> str:
    """default.yaml with lookaside + legacy sigstore keys; other scopes already in the file
    are kept (an invalid file is an error: nothing is overwritten); every scope ``policy``
    requires sigstore signatures for gets ``use-sigstore-attachments: true``."""
    path = host.path(REGISTRIES_D_FILE)
    current = files.read_text(path)
    docker: dict[str, rd.Section] = {}
    if current is not None:
        # podsec rewrites this file as its own: a key it does not know would be dropped
        # silently, so it is refused (in other files it is only a warning)
        docker = rd.parse(current, REGISTRIES_D_FILE, own=True).docker
    # any other file in the directory must not define default-docker (merge conflict)
    directory = path.parent
    if directory.is_dir():
        for other in sorted(directory.glob("*.yaml")):
            if other.name == path.name:
                continue
            shown = f"{SYSTEM_REGISTRIES_D}/{other.name}"
            parsed = rd.parse(other.read_text(encoding="utf-8"), shown)
            if parsed.default_docker is not None:
                raise ValidationError(
                    _("{file}: default-docker is also defined there").format(file=shown),
                    hint=_("remove that section; podsec sets default-docker in {file}").format(
                        file=REGISTRIES_D_FILE
                    ),
                )
    for scope in pol.sigstore_scopes(policy) if policy is not None else []:
        docker[scope] = replace(docker.get(scope, rd.Section()), use_sigstore_attachments=True)
    conf = rd.RegistriesD(rd.Section(LOOKASIDE_URL), docker)
    return rd.render(conf, HEADER)


REGISTRIES_CONF = f"""\
# {HEADER}
# registry.local is served over plain HTTP (podsec services); the images are protected by
# signatures (policy.json), not by TLS.
[[registry]]
location = "{REGISTRY_HOST}"
insecure = true
"""


def fetch_published(url: str = KEYS_URL, timeout: float = 15.0) -> dict[str, bytes]:
    """Every file of the JSON listing at ``url`` (nginx ``autoindex_format json``)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - http only
            listing = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PodsecError(
            _("cannot read the published keys at {url}: {err}").format(
                url=url, err=getattr(exc, "reason", exc)
            ),
            hint=_(
                "is sigstore.local reachable and `podsec services` running on the registry node?"
            ),
        ) from exc
    out: dict[str, bytes] = {}
    for entry in listing if isinstance(listing, list) else []:
        if not isinstance(entry, dict) or entry.get("type") != "file":
            continue
        name = entry.get("name")
        if not isinstance(name, str):
            continue
        if name != "policy.json" and not _KEY_NAME_RE.fullmatch(name):
            continue  # only keys and the policy are ever installed
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/" + name, timeout=timeout) as resp:  # noqa: S310
                out[name] = resp.read()
        except (urllib.error.URLError, OSError) as exc:
            raise PodsecError(
                _("cannot download {name} from {url}: {err}").format(
                    name=name, url=url, err=getattr(exc, "reason", exc)
                )
            ) from exc
    if "policy.json" not in out:
        raise PodsecError(_("{url} publishes no policy.json").format(url=url))
    return out


def verify_published(
    published: dict[str, bytes], pins: Pins
) -> tuple[pol.Policy, dict[str, bytes]]:
    """Check the downloaded policy and keys against the pins; return what to install.

    A key is installed when its fingerprint or its sha256 is pinned. The policy is accepted
    when its sha256 is pinned, or when it is a podsec policy (reject by default, every
    registry.local scope signedBy keys in /var/sigstore/keys) whose every key is pinned.
    """
    if pins.empty:
        raise UsageError(
            _("this node is not the registry node: refusing to trust keys fetched over HTTP"),
            hint=_(
                "re-run with --trust FINGERPRINT (of each maker key) or --trust sha256:HEX "
                "(of policy.json) as printed by `podsec policy create` on the registry node"
            ),
        )
    text = published["policy.json"]
    policy = pol.parse(text.decode(errors="replace"), KEYS_URL + "policy.json")
    sha = "sha256:" + hashlib.sha256(text).hexdigest()
    keys: dict[str, bytes] = {}
    key_fprs: dict[str, str] = {}
    for name, data in published.items():
        if name == "policy.json":
            continue
        # a sigstore key (NAME.pub) is pinned by its file's sha256; a GPG key file by the
        # fingerprints of all its keys (a file gpg finds no key in is never "all pinned")
        info = [] if name.endswith(pol.SIGSTORE_KEY_SUFFIX) else gpgkeys.key_file_info(data)
        key_sha = "sha256:" + hashlib.sha256(data).hexdigest()
        by_fpr = bool(info) and all(k.fingerprint in pins.fingerprints for k in info)
        if by_fpr or key_sha in pins.sha256:
            keys[name] = data
            key_fprs[name] = ",".join(k.fingerprint for k in info)
    referenced = {k for r in _all_reqs(policy) for k in r.keys}
    for path in sorted(referenced):
        name = Path(path).name
        if not path.startswith(KEYS_DIR + "/") or name not in keys:
            raise ValidationError(
                _("{url}policy.json uses key {path}, which is not covered by --trust").format(
                    url=KEYS_URL, path=path
                ),
                hint=_("nothing was installed; check the pins with the registry administrator"),
            )
    unsafe = (
        pol.default_type(policy) != pol.REJECT
        or any(
            r.type == pol.ACCEPT
            for reqs in policy.transports.get("docker", {}).values()
            for r in reqs
        )
        or any(r.key_data is not None for r in _all_reqs(policy))
    )
    if sha not in pins.sha256 and unsafe:
        raise ValidationError(
            _(
                "{url}policy.json is not pinned by --trust sha256 and is not a podsec policy "
                "(reject by default, registry.local signed by pinned keys)"
            ).format(url=KEYS_URL),
            hint=_("nothing was installed"),
        )
    return policy, keys


def _all_reqs(policy: pol.Policy) -> list[pol.Requirement]:
    out = list(policy.default)
    for scopes in policy.transports.values():
        for reqs in scopes.values():
            out.extend(reqs)
    return out


def pin_values(host: Host) -> list[str]:
    """What other nodes pass to ``--trust``: the published policy's sha256."""
    path = host.path(PUBLISHED_POLICY)
    if not path.is_file():
        return []
    return ["sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()]


def _base_system(
    host: Host, ip: str, local: bool, force: bool, note: Callable[[str, bool], None]
) -> None:
    """/etc/hosts, groups, the userns sysctl and /var/sigstore/keys."""
    note("/etc/hosts", etc_hosts.ensure_names(host, ip, HOST_NAMES, force=force))
    for group in (GROUP_PODMAN, GROUP_PODMAN_DEV):
        note(f"group {group}", accounts.ensure_group(host, group))
    if sysctl.read(host, "kernel.unprivileged_userns_clone") is not None or not host.is_live:
        note(
            f"/etc/sysctl.d/{SYSCTL_FILE}",
            sysctl.ensure_file(
                host,
                SYSCTL_FILE,
                {"kernel.unprivileged_userns_clone": "1"},
                comment=HEADER,
                apply=sysctl.read(host, "kernel.unprivileged_userns_clone") is not None,
            ),
        )
    owner_group = accounts.gid(host, GROUP_PODMAN_DEV if local else GROUP_PODMAN)
    note(SIGSTORE_ROOT, files.ensure_dir(host.path(SIGSTORE_ROOT), mode=0o755, owner=0, group=0))
    note(KEYS_DIR, files.ensure_dir(host.path(KEYS_DIR), mode=0o775, owner=0, group=owner_group))


def create_policy(
    host: Host,
    address: str,
    *,
    force: bool = False,
    trust: Sequence[str] = (),
    registry_node: bool | None = None,
    keys_url: str = KEYS_URL,
    pause_image: str | None = None,
    progress: Progress = NULL_PROGRESS,
) -> PolicyReport:
    """Configure the node's container trust (see the module docstring).

    ``pause_image`` (e.g. registry.local/k8s-p10/pause:3.9) becomes podman's infra image in
    podsec's containers.conf drop-in — never by editing the vendor containers.conf.
    """
    ip = check_address(address)
    if pause_image is not None:
        pause_image = str(reference.parse(pause_image))
    pins = parse_pins(trust)
    local = is_local_address(ip) if registry_node is None else registry_node
    # Validate everything that can be wrong BEFORE the first write.
    if local:
        policy = merged_policy(host)
        published: dict[str, bytes] = {}
    else:
        if pins.empty:
            verify_published({"policy.json": b"{}"}, pins)  # raises the explanation
        progress.start(_("fetching the published policy and keys"))
        published = fetch_published(keys_url)
        policy, keys_to_install = verify_published(published, pins)
        progress.finish(_("fetching the published policy and keys"))
    regd_text = registries_d_text(host, policy)
    if not force and any(etc_hosts.lookup(host, n) not in (None, ip) for n in HOST_NAMES):
        etc_hosts.ensure_names(host, ip, HOST_NAMES, force=False)  # raises with the hint

    changed: list[str] = []
    unchanged: list[str] = []
    notes: list[str] = []

    def note(path: str, did: bool) -> None:
        (changed if did else unchanged).append(path)

    _base_system(host, ip, local, force, note)
    if local:
        dev = accounts.gid(host, GROUP_PODMAN_DEV)
        note(
            SIGNATURES_DIR,
            files.ensure_dir(host.path(SIGNATURES_DIR), mode=0o775, owner=0, group=dev),
        )
        note(
            f"{SIGSTORE_ROOT}/index.html",
            files.atomic_write(
                host.path(f"{SIGSTORE_ROOT}/index.html"), "SigStore works!\n", mode=0o644
            ),
        )
    else:
        for name, data in sorted(keys_to_install.items()):
            note(
                f"{KEYS_DIR}/{name}",
                gpgkeys.write_public(host.path(f"{KEYS_DIR}/{name}"), data.decode()),
            )
        notes.append(
            _("installed {n} pinned key(s) from {url}").format(n=len(keys_to_install), url=keys_url)
        )
    for path in write_policy(host, policy, publish=local):
        changed.append(path)
    if pol.SYSTEM_POLICY not in changed:
        unchanged.append(pol.SYSTEM_POLICY)
    note(REGISTRIES_D_FILE, files.atomic_write(host.path(REGISTRIES_D_FILE), regd_text, mode=0o644))
    note(
        REGISTRIES_CONF_DROPIN,
        files.atomic_write(host.path(REGISTRIES_CONF_DROPIN), REGISTRIES_CONF, mode=0o644),
    )
    if pause_image is not None:
        note(
            CONTAINERS_CONF_DROPIN,
            files.atomic_write(
                host.path(CONTAINERS_CONF_DROPIN),
                f'# {HEADER}\n[engine]\ninfra_image = "{pause_image}"\n',
                mode=0o644,
            ),
        )
    if local and not signed_scopes(policy):
        notes.append(
            _(
                "no image maker yet: registry.local images are refused until "
                "`podsec users create-imagemaker` adds a signing key"
            )
        )
    return PolicyReport(
        ip,
        local,
        tuple(changed),
        tuple(unchanged),
        tuple(notes),
        tuple(pin_values(host)) if local else (),
    )

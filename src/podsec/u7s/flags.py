"""The kubeadm wrapper's argument model: ``kubeadm [global flags] COMMAND [flags] [args]``.

Parsed by hand from a table of kubeadm's own flags (no getopt: the original's getopt errors
went undetected and most flags were silently dropped). For ``init`` and ``join`` every flag is
either *read into the plan* (it becomes part of the generated kubeadm configuration, because
kubeadm refuses to mix ``--config`` with such flags) or *passed through* verbatim to the real
kubeadm (the flags kubeadm allows next to ``--config``). ``--help`` anywhere, ``init phase``,
``join phase``, ``reset`` and every other subcommand are passed through untouched.

Both ``--flag value`` and ``--flag=value`` work; list flags may repeat or use commas. A bad
value raises :class:`~podsec.errors.UsageError` naming the flag.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from podsec.errors import UsageError
from podsec.i18n import _

Kind = Literal["value", "list", "bool"]
Use = Literal["plan", "pass", "podsec"]


@dataclass(frozen=True)
class FlagSpec:
    kind: Kind
    use: Use
    commands: frozenset[str]  # "init", "join"; global flags list both


_BOTH = frozenset({"init", "join"})
_INIT = frozenset({"init"})
_JOIN = frozenset({"join"})

# kubeadm 1.20 … 1.31 flags of init and join. "pass": kubeadm accepts it next to --config.
FLAGS: dict[str, FlagSpec] = {
    # global (cobra persistent) flags
    "v": FlagSpec("value", "pass", _BOTH),
    "add-dir-header": FlagSpec("bool", "pass", _BOTH),
    "log-file": FlagSpec("value", "pass", _BOTH),
    "log-file-max-size": FlagSpec("value", "pass", _BOTH),
    "one-output": FlagSpec("bool", "pass", _BOTH),
    "rootfs": FlagSpec("value", "pass", _BOTH),
    "skip-headers": FlagSpec("bool", "pass", _BOTH),
    "skip-log-headers": FlagSpec("bool", "pass", _BOTH),
    # init and join
    "apiserver-advertise-address": FlagSpec("value", "plan", _BOTH),
    "apiserver-bind-port": FlagSpec("value", "plan", _BOTH),
    "certificate-key": FlagSpec("value", "plan", _BOTH),
    "config": FlagSpec("value", "plan", _BOTH),
    "cri-socket": FlagSpec("value", "plan", _BOTH),
    "dry-run": FlagSpec("bool", "pass", _BOTH),
    "ignore-preflight-errors": FlagSpec("list", "pass", _BOTH),
    "node-name": FlagSpec("value", "plan", _BOTH),
    "patches": FlagSpec("value", "pass", _BOTH),
    "experimental-patches": FlagSpec("value", "pass", _BOTH),
    "skip-phases": FlagSpec("list", "plan", _BOTH),
    "token": FlagSpec("value", "plan", _BOTH),
    "force": FlagSpec("bool", "podsec", _BOTH),  # podsec: allow re-initialising a node
    # init only
    "apiserver-cert-extra-sans": FlagSpec("list", "plan", _INIT),
    "cert-dir": FlagSpec("value", "plan", _INIT),
    "control-plane-endpoint": FlagSpec("value", "plan", _INIT),
    "feature-gates": FlagSpec("value", "plan", _INIT),
    "image-repository": FlagSpec("value", "plan", _INIT),
    "kubernetes-version": FlagSpec("value", "plan", _INIT),
    "pod-network-cidr": FlagSpec("value", "plan", _INIT),
    "service-cidr": FlagSpec("value", "plan", _INIT),
    "service-dns-domain": FlagSpec("value", "plan", _INIT),
    "skip-certificate-key-print": FlagSpec("bool", "pass", _INIT),
    "skip-token-print": FlagSpec("bool", "pass", _INIT),
    "token-ttl": FlagSpec("value", "plan", _INIT),
    "upload-certs": FlagSpec("bool", "pass", _INIT),
    # join only
    "control-plane": FlagSpec("bool", "plan", _JOIN),
    "discovery-file": FlagSpec("value", "plan", _JOIN),
    "discovery-token": FlagSpec("value", "plan", _JOIN),
    "discovery-token-ca-cert-hash": FlagSpec("list", "plan", _JOIN),
    "discovery-token-unsafe-skip-ca-verification": FlagSpec("bool", "plan", _JOIN),
    "tls-bootstrap-token": FlagSpec("value", "plan", _JOIN),
}
_SHORT = {"v": "v", "h": "help"}
_PLANNED = ("init", "join")

_TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}\Z")
_HASH_RE = re.compile(r"^sha256:[0-9a-fA-F]{64}\Z")
_CERT_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}\Z")
_DURATION_RE = re.compile(r"^(0|(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)\Z")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
# fullmatch only: "$" would also accept a trailing newline
DNS_NAME_RE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_HOSTPORT_RE = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])(:(?P<port>\d+))?\Z")
_VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?\Z")
_REPO_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)*\Z")
_GATE_RE = re.compile(r"^[A-Za-z0-9]+=(true|false)\Z", re.IGNORECASE)
_BOOL_TEXT = {"true": True, "1": True, "t": True, "false": False, "0": False, "f": False}


@dataclass(frozen=True)
class KubeadmArgs:
    """The user's kubeadm command line, parsed."""

    raw: tuple[str, ...]
    command: str = ""  # "init", "join", "reset", any other subcommand, "" for none
    help: bool = False
    # init/join only (empty for pass-through commands):
    positionals: tuple[str, ...] = ()  # join: ("HOST:PORT",)
    values: dict[str, str] = field(default_factory=dict)  # value flags read into the plan
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)  # list flags (any use)
    booleans: frozenset[str] = frozenset()  # bool flags set to true (any use)
    passthrough: tuple[str, ...] = ()  # normalised pass flags for the real kubeadm
    verbosity: int | None = None
    phase: bool = False  # "init phase ..." / "join phase ...": passed through

    @property
    def planned(self) -> bool:
        """True when podsec builds a NodePlan (init/join proper, not help or phases)."""
        return self.command in _PLANNED and not self.help and not self.phase

    @property
    def force(self) -> bool:
        return "force" in self.booleans

    def value(self, name: str) -> str | None:
        return self.values.get(name)

    def flag(self, name: str) -> bool:
        return name in self.booleans

    def passthrough_argv(self) -> list[str]:
        """The argv for the real kubeadm when podsec does not plan (help, phases, reset ...)."""
        return list(self.raw)


def _bad(flag: str, value: str, why: str) -> UsageError:
    return UsageError(
        _("kubeadm: invalid value {value!r} for --{flag}: {why}").format(
            value=value, flag=flag, why=why
        )
    )


def _split_flag(token: str) -> tuple[str, str | None]:
    """``--name=value`` → (name, value); ``--name`` → (name, None); ``-v3`` → ("v", "3")."""
    if token.startswith("--"):
        name, eq, val = token[2:].partition("=")
        return name, val if eq else None
    body = token[1:]
    letter, rest = body[:1], body[1:]
    short = _SHORT.get(letter)
    if short is None:
        raise UsageError(_("kubeadm: unknown shorthand flag {flag}").format(flag=token))
    if rest.startswith("="):
        rest = rest[1:]
    return short, rest or None


def _verbosity(value: str) -> int:
    if not value.isdigit():
        raise _bad("v", value, _("expected a number 0-9"))
    return int(value)


def _parse_global(argv: Sequence[str]) -> tuple[int, int | None, bool]:
    """Skip the global flags before the subcommand; return (index, verbosity, help)."""
    i, verbosity, want_help = 0, None, False
    while i < len(argv):
        item = argv[i]
        if not item.startswith("-") or item == "-":
            break
        if item == "--":
            return i + 1, verbosity, want_help
        name, val = _split_flag(item)
        if name == "help":
            want_help = True
            i += 1
            continue
        spec = FLAGS.get(name)
        if spec is None or spec.use != "pass" or name in ("dry-run", "ignore-preflight-errors"):
            raise UsageError(
                _("kubeadm: flag {flag} must follow the subcommand").format(flag=item),
                hint=_("e.g. kubeadm -v 5 init --pod-network-cidr=10.244.0.0/16"),
            )
        if spec.kind != "bool" and val is None:
            if i + 1 >= len(argv):
                raise UsageError(_("kubeadm: flag --{flag} needs a value").format(flag=name))
            val = argv[i + 1]
            i += 1
        if name == "v":
            verbosity = _verbosity(val or "")
        i += 1
    return i, verbosity, want_help


def parse(argv: Sequence[str]) -> KubeadmArgs:  # noqa: PLR0912, PLR0915 - one loop over tokens
    """Parse the arguments that follow ``kubeadm``."""
    raw = tuple(argv)
    start, verbosity, want_help = _parse_global(raw)
    if start >= len(raw):
        return KubeadmArgs(raw=raw, help=True, verbosity=verbosity)
    command = raw[start]
    rest = raw[start + 1 :]
    if want_help or any(t in ("-h", "--help") or t.startswith("--help=") for t in rest):
        return KubeadmArgs(raw=raw, command=command, help=True, verbosity=verbosity)
    if command not in _PLANNED or (rest and rest[0] == "phase"):
        phase = command in _PLANNED
        return KubeadmArgs(raw=raw, command=command, verbosity=verbosity, phase=phase)

    values: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    booleans: set[str] = set()
    passthrough: list[str] = []
    order: list[str] = []
    positionals: list[str] = []
    # the global flags given before the subcommand pass through too
    pre = list(raw[:start])
    tokens = [*pre, *rest]
    i = 0
    only_positionals = False
    while i < len(tokens):
        item = tokens[i]
        i += 1
        if only_positionals or not item.startswith("-") or item == "-":
            positionals.append(item)
            continue
        if item == "--":
            only_positionals = True
            continue
        name, val = _split_flag(item)
        spec = FLAGS.get(name)
        if spec is None or command not in spec.commands:
            raise UsageError(
                _("kubeadm {command}: unknown flag {flag}").format(command=command, flag=item),
                hint=_("see kubeadm {command} --help").format(command=command),
            )
        if spec.kind == "bool":
            if val is None:
                on = True
            elif val.lower() in _BOOL_TEXT:
                on = _BOOL_TEXT[val.lower()]
            else:
                raise _bad(name, val, _("expected true or false"))
            if on:
                booleans.add(name)
            else:
                booleans.discard(name)
            if spec.use == "pass" and name not in order:
                order.append(name)
            continue
        if val is None:
            if i >= len(tokens):
                raise UsageError(_("kubeadm: flag --{flag} needs a value").format(flag=name))
            val = tokens[i]
            i += 1
        if spec.use == "pass" and name not in order:
            order.append(name)
        if spec.kind == "list":
            items = [v.strip() for v in val.split(",") if v.strip()]
            lists.setdefault(name, []).extend(items)
            continue
        values[name] = val
        if name == "v":
            verbosity = _verbosity(val)
    # pass flags in the order the user gave them, normalised to --name[=value]
    for name in order:
        if name in booleans:
            passthrough.append(f"--{name}")
        elif name in lists:
            passthrough.append(f"--{name}={','.join(lists[name])}")
        elif name in values:
            passthrough.append(f"--{name}={values[name]}")
    args = KubeadmArgs(
        raw=raw,
        command=command,
        positionals=tuple(positionals),
        values={k: v for k, v in values.items() if FLAGS[k].use != "pass"},
        lists={k: tuple(v) for k, v in lists.items()},
        booleans=frozenset(booleans),
        passthrough=tuple(passthrough),
        verbosity=verbosity,
    )
    validate(args)
    return args


def _check_ipv4(flag: str, value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError as exc:
        raise _bad(flag, value, _("expected an IPv4 address")) from exc


def _check_port(flag: str, value: str) -> None:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise _bad(flag, value, _("expected a port number 1-65535"))


def check_cidr(flag: str, value: str) -> ipaddress.IPv4Network:
    """An IPv4 network with no host bits set; the error names the flag."""
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise _bad(flag, value, str(exc)) from exc
    if not isinstance(net, ipaddress.IPv4Network):
        raise _bad(flag, value, _("only IPv4 networks are supported"))
    return net


def check_endpoint(flag: str, value: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` → (host, port or None)."""
    m = _HOSTPORT_RE.match(value)
    if not m:
        raise _bad(flag, value, _("expected HOST or HOST:PORT"))
    port = m.group("port")
    if port is not None:
        _check_port(flag, port)
    return m.group("host"), int(port) if port else None


def validate(args: KubeadmArgs) -> None:  # noqa: PLR0912 - one check per flag
    """Check every value the user gave; raise UsageError on the first bad one."""
    v = args.values
    for name in ("apiserver-advertise-address",):
        if name in v:
            _check_ipv4(name, v[name])
    if "apiserver-bind-port" in v:
        _check_port("apiserver-bind-port", v["apiserver-bind-port"])
    for name in ("pod-network-cidr", "service-cidr"):
        if name in v:
            check_cidr(name, v[name])
    if "control-plane-endpoint" in v:
        check_endpoint("control-plane-endpoint", v["control-plane-endpoint"])
    for name in ("token", "discovery-token", "tls-bootstrap-token"):
        if name in v and not _TOKEN_RE.match(v[name]):
            raise _bad(name, v[name], _("expected a token like abcdef.0123456789abcdef"))
    if "token-ttl" in v and not _DURATION_RE.match(v["token-ttl"]):
        raise _bad("token-ttl", v["token-ttl"], _("expected a duration like 24h0m0s or 0"))
    for h in args.lists.get("discovery-token-ca-cert-hash", ()):
        if not _HASH_RE.match(h):
            raise _bad("discovery-token-ca-cert-hash", h, _("expected sha256:<64 hex digits>"))
    if "certificate-key" in v and not _CERT_KEY_RE.match(v["certificate-key"]):
        raise _bad("certificate-key", v["certificate-key"], _("expected 64 hex digits"))
    for name in ("node-name", "service-dns-domain"):
        if name in v and not DNS_NAME_RE.fullmatch(v[name]):
            raise _bad(name, v[name], _("expected a lower-case DNS name"))
    if "kubernetes-version" in v and not _VERSION_RE.match(v["kubernetes-version"]):
        raise _bad(
            "kubernetes-version", v["kubernetes-version"], _("expected a version like v1.26.3")
        )
    if "image-repository" in v and not _REPO_RE.match(v["image-repository"]):
        raise _bad("image-repository", v["image-repository"], _("expected HOST[:PORT][/PATH]"))
    if "feature-gates" in v:
        for gate in v["feature-gates"].split(","):
            if not _GATE_RE.match(gate.strip()):
                raise _bad("feature-gates", v["feature-gates"], _("expected Name=true|false,..."))
    if "cri-socket" in v:
        sock = v["cri-socket"]
        if not (sock.startswith("/") or sock.startswith("unix:///")):
            raise _bad("cri-socket", sock, _("expected a socket path or unix:///path"))
    for name in ("config", "cert-dir", "discovery-file"):
        if name in v and not v[name]:
            raise _bad(name, v[name], _("must not be empty"))
    for san in args.lists.get("apiserver-cert-extra-sans", ()):
        try:
            ipaddress.ip_address(san)
        except ValueError:
            if not DNS_NAME_RE.fullmatch(san.lower().removeprefix("*.")):
                raise _bad(
                    "apiserver-cert-extra-sans", san, _("expected an IP or DNS name")
                ) from None
    if args.command == "join":
        _validate_join(args)
    elif args.positionals:
        raise UsageError(
            _("kubeadm init: unexpected argument {arg}").format(arg=args.positionals[0])
        )


def _validate_join(args: KubeadmArgs) -> None:
    v = args.values
    if len(args.positionals) > 1:
        raise UsageError(
            _("kubeadm join: expected one API server endpoint, got {args}").format(
                args=" ".join(args.positionals)
            )
        )
    if args.positionals:
        _host, port = check_endpoint("join", args.positionals[0])
        if port is None:
            raise _bad("join", args.positionals[0], _("expected HOST:PORT"))
    if "config" in v or "discovery-file" in v:
        return
    if not args.positionals:
        raise UsageError(
            _("kubeadm join: the API server endpoint HOST:PORT is missing"),
            hint=_("copy the join command that kubeadm init printed"),
        )
    if "token" not in v and "discovery-token" not in v:
        raise UsageError(_("kubeadm join: --token is missing"))
    if not args.lists.get("discovery-token-ca-cert-hash") and not args.flag(
        "discovery-token-unsafe-skip-ca-verification"
    ):
        raise UsageError(
            _("kubeadm join: --discovery-token-ca-cert-hash is missing"),
            hint=_("or pass --discovery-token-unsafe-skip-ca-verification (not recommended)"),
        )

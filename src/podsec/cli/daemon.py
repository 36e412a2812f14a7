"""The node's resident services, as the supervisor starts them: without click.

These processes stay in memory for the node's whole life, on every node; click and the
command tree would add 5–8 MB of RSS to each (measured in ``benchmarks/bench_u7s_node.py``,
"node footprint"). The supervisor runs them as::

    python -m podsec.cli.daemon NAME [KEY=VALUE ...]

People use the ``podsec u7s …`` commands (``run``, ``admission serve``), which call the same
core functions with the same defaults; this entry point parses nothing else.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from podsec.errors import PodsecError

if TYPE_CHECKING:
    from podsec.host.paths import Host
    from podsec.u7s.layout import Layout


def _host() -> Host:
    from podsec import config
    from podsec.host.paths import Host

    return Host(config.load().root)  # PODSEC_ROOT


def _node() -> tuple[Host, Layout]:
    """The host and the node of ``Settings.u7s_user`` (u7s-admin, or PODSEC_U7S_USER)."""
    from podsec import config
    from podsec.host.paths import Host
    from podsec.u7s.layout import layout_for

    settings = config.load()
    host = Host(settings.root)
    return host, layout_for(host, settings.u7s_user)


def _u7s_run(opts: Mapping[str, str]) -> int:
    from podsec.u7s import supervisor

    return supervisor.Supervisor(*_node()).run()


def _child(opts: Mapping[str, str]) -> int:
    from podsec.u7s import child

    child.main(Path(opts["spec"]))


def _admission(opts: Mapping[str, str]) -> int:
    from podsec.u7s import admission, admission_cache

    host, layout = _node()
    ttl = float(opts.get("cache_ttl", admission_cache.DEFAULT_TTL))
    port = int(opts.get("port", admission.PORT))
    admission.node_webhook(host, layout, port=port, ttl=ttl).serve_forever()
    return 0


def _admission_listen(opts: Mapping[str, str]) -> int:
    from podsec.u7s import admission

    admission.send_listener(int(opts["port"]), Path(opts["to"]), opts.get("address", "0.0.0.0"))  # noqa: S104
    return 0


def _authz(opts: Mapping[str, str]) -> int:
    """The revocation webhook: on a u7s node (``node=1``) its port is opened inside the node's
    namespace, where the API server dials 127.0.0.1, and the same port on the host's loopback
    answers the monitor's probe (check-authz runs on the host); elsewhere it listens on
    ``address``."""
    import threading

    from podsec.webhook import authz

    host = _host()
    port = int(opts.get("port", authz.PORT))
    address = opts.get("address", authz.ADDRESS)
    if opts.get("node") == "1":
        from podsec.u7s import admission

        inside = admission.listener_from_namespace(
            _node()[1], port, address=address, box_name="authz-listen.sock"
        )
        probe = authz.host_webhook(host, address=address, port=port)
        threading.Thread(target=probe.serve_forever, daemon=True).start()
        authz.host_webhook(host, inside).serve_forever()
        return 0
    authz.host_webhook(host, address=address, port=port).serve_forever()
    return 0


def _rbac_expire(opts: Mapping[str, str]) -> int:
    """Bindings whose --for is over leave them (the timer and the u7s supervisor run this)."""
    from podsec.host.syslog import Syslog
    from podsec.rbac import expiry

    syslog = Syslog(expiry.TAG, os.environ.get("PODSEC_SYSLOG_SOCKET", "/dev/log"))
    try:
        expiry.expire(_host(), syslog.log, kubeconfig=opts.get("kubeconfig"))
    finally:
        syslog.close()
    return 0


def _kubelet_docker_shim(opts: Mapping[str, str]) -> int:
    from podsec.u7s import kubelet

    seconds = float(opts.get("seconds", kubelet.DOCKER_SHIM_SECONDS))
    kubelet.serve_docker_shim(Path(opts["socket"]), seconds)
    return 0


DAEMONS: dict[str, Callable[[Mapping[str, str]], int]] = {
    "u7s-run": _u7s_run,
    "child": _child,
    "admission": _admission,
    "authz": _authz,
    "rbac-expire": _rbac_expire,
    # run by the webhook itself inside the node's namespaces (through nsenter), briefly
    "admission-listen": _admission_listen,
    # before a kubelet < 1.24 starts: answers cAdvisor's Docker questions, then exits
    "kubelet-docker-shim": _kubelet_docker_shim,
}


def _logging() -> None:
    # what podsec.cli.context.setup_logging does at the default level (it imports click)
    logger = logging.getLogger("podsec")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("podsec: %(message)s"))
        logger.addHandler(handler)
    from podsec import config

    logger.setLevel(logging.DEBUG if config.debug_requested() else logging.WARNING)
    logger.propagate = False


def main(args: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if args is None else args)
    try:
        run = DAEMONS[words[0]]
        opts = dict(w.split("=", 1) for w in words[1:])
    except (IndexError, KeyError, ValueError):
        print(
            f"usage: python -m podsec.cli.daemon {{{','.join(DAEMONS)}}} [KEY=VALUE ...]",
            file=sys.stderr,
        )
        return 2
    _logging()
    try:
        return run(opts)
    except PodsecError as exc:
        print(f"podsec: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyError as exc:
        print(f"podsec.cli.daemon {words[0]}: missing {exc.args[0]}=…", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

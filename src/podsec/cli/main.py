"""``podsec`` — the unified command line — and the runner shared by the original names.

Subcommand groups are imported lazily (a monitoring plugin must not pay for the Kubernetes
client), and every entry point goes through :func:`invoke`, the one place that turns a
:class:`~podsec.errors.PodsecError` or a usage error into a one-line message and an exit code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import click

from podsec.errors import PodsecError
from podsec.i18n import _

# name → "module:attribute"; each area owns its module.
GROUPS: dict[str, str] = {
    "doctor": "podsec.cli.doctor:doctor",
    "policy": "podsec.cli.policy:policy",
    "users": "podsec.cli.users:users",
    "services": "podsec.cli.services:services",
    "images": "podsec.cli.images:images",
    "u7s": "podsec.cli.u7s:u7s",
    "lb": "podsec.cli.lb:lb",
    "ingress": "podsec.cli.lb:ingress",
    "rbac": "podsec.cli.rbac:rbac",
    "monitor": "podsec.cli.monitor:monitor",
}

# Each group's help, kept here (the groups take theirs from this table) so that
# ``podsec --help`` lists them without importing them all.
GROUP_HELP: dict[str, str] = {
    "doctor": _(
        "Check that this machine is ready for rootless containers and Kubernetes: kernel, "
        "user namespaces, subordinate ids, cgroups, devices, sysctls, init system and every "
        "program podsec uses. Exit 1 when a check fails."
    ),
    "policy": _("Image trust policy: which images may be pulled, signed by whom."),
    "users": _("Image users (group podman) and image makers (group podman_dev)."),
    "services": _("The local registry (registry.local) and signature server (sigstore.local)."),
    "images": _("Image archives for air-gapped nodes, loading with signatures, audits."),
    "u7s": _("Rootless Kubernetes: every pod runs in the user namespace of u7s-admin."),
    "lb": _("Load balancing of the API servers: haproxy and keepalived."),
    "ingress": _("Ingress controller manifests for the local registry."),
    "rbac": _("Kubernetes RBAC users: certificates, kubeconfigs, role bindings."),
    "monitor": _("Security monitoring: Nagios plugins and watchers."),
}


def _load(spec: str) -> click.Command:
    module, _sep, attr = spec.partition(":")
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    return command


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used. ``helps`` (name → help text,
    the same the command itself shows) lets ``--help`` list them without importing them."""

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, str],
        helps: Mapping[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self._lazy = lazy
        self._helps = helps or {}
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            if self._listing and cmd_name in self._helps:
                # the listing shows only the short help: no need to import the command
                return click.Command(cmd_name, help=self._helps[cmd_name])
            return _load(self._lazy[cmd_name])
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self._listing = False


CONTEXT_SETTINGS = {"help_option_names": ["--help"], "max_content_width": 100}


@click.group(
    cls=LazyGroup,
    lazy=GROUPS,
    helps=GROUP_HELP,
    context_settings=CONTEXT_SETTINGS,
    help=_(
        "Secure a Linux node for containers and Kubernetes: signed images from a local "
        "registry, rootless Kubernetes, RBAC users and security monitoring."
    ),
    epilog=_("Examples:\n\n  podsec doctor\n\n  podsec --root /srv/image doctor --json"),
)
@click.option(
    "--root",
    metavar="DIR",
    envvar="PODSEC_ROOT",
    help=_("Configure the system tree under DIR instead of / (also PODSEC_ROOT)."),
)
@click.option("-v", "--verbose", count=True, help=_("Show the commands podsec runs (-vv: debug)."))
@click.option("--debug", is_flag=True, help=_("Show tracebacks for internal errors."))
@click.version_option(package_name="podsec", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, root: str | None, verbose: int, debug: bool) -> None:
    from podsec.cli import context

    context.setup_logging(verbose, debug or _debug_requested())
    ctx.obj = context.build(root, verbose=verbose)


def _debug_requested(argv: Sequence[str] | None = None) -> bool:
    args = sys.argv[1:] if argv is None else argv
    from podsec import config

    return "--debug" in args or config.debug_requested()


def invoke(
    command: click.Command,
    prog_name: str,
    args: Sequence[str] | None = None,
    *,
    usage_exit: int = 2,
    internal_exit: int = 70,
    original: bool = False,
) -> NoReturn:
    """Run ``command`` as program ``prog_name`` and exit with its status.

    Usage errors print one line (exit ``usage_exit``; Nagios plugins pass 3); a
    PodsecError prints ``<prog>: <message>`` and its hint (``podsec:`` for podsec itself, the
    original program's name under it); anything unexpected prints one line too unless
    ``--debug``/``PODSEC_DEBUG`` asks for the traceback. ``original``: an original program
    name — an error that knows the original's exit status exits with it.
    """
    argv = list(sys.argv[1:] if args is None else args)
    try:
        rv = command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = _("try '{prog} --help'").format(prog=_help_path(exc, prog_name))
        click.echo(f"{prog_name}: {exc.format_message()} ({hint})", err=True)
        sys.exit(usage_exit)
    except click.Abort:
        click.echo(_("{prog}: aborted").format(prog=prog_name), err=True)
        sys.exit(130)
    except PodsecError as exc:
        message, *hints = exc.diagnostics()
        click.echo(f"{prog_name}: {message}", err=True)
        for hint in hints:
            click.echo(f"  {hint}", err=True)
        if _debug_requested(argv):
            _print_traceback()
        if original and exc.original_code is not None:
            sys.exit(exc.original_code)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the one catch-all: the user gets one line, not a traceback
        if _debug_requested(argv):
            _print_traceback()
        else:
            click.echo(
                _("podsec: internal error: {err} (run with --debug for details)").format(
                    err=f"{type(exc).__name__}: {exc}"
                ),
                err=True,
            )
        sys.exit(internal_exit)
    sys.exit(rv if isinstance(rv, int) else 0)


def _print_traceback() -> None:
    import traceback  # only with --debug: a plugin's start-up does not pay for it

    traceback.print_exc()


def _help_path(exc: click.UsageError, prog_name: str) -> str:
    ctx = exc.ctx
    return ctx.command_path if ctx is not None else prog_name


def main() -> NoReturn:
    invoke(cli, "podsec")


def legacy(command_spec: str, prog_name: str, *, plugin: bool = False) -> Callable[[], NoReturn]:
    """Build a console-script entry point for an original program name.

    ``plugin``: a Nagios plugin's name — usage errors, internal errors and even ``--help``
    and ``--version`` exit 3 (UNKNOWN), as the plugin guidelines ask.
    """

    def entry() -> NoReturn:
        if not plugin:
            invoke(_load(command_spec), prog_name, original=True)
        wants_help = any(a in ("--help", "--version") for a in sys.argv[1:])
        try:
            invoke(_load(command_spec), prog_name, usage_exit=3, internal_exit=3)
        except SystemExit as exc:
            if wants_help and exc.code in (0, None):
                sys.exit(3)
            raise

    return entry

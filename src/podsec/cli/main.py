"""``podsec`` — the unified command line — and the runner shared by the original names.

Subcommand groups are imported lazily (a monitoring plugin must not pay for the Kubernetes
client), and every entry point goes through :func:`invoke`, the one place that turns a
:class:`~podsec.errors.PodsecError` or a usage error into a one-line message and an exit code.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Callable, Sequence
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


def _load(spec: str) -> click.Command:
    module, _sep, attr = spec.partition(":")
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    return command


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used (or listed by --help)."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            return _load(self._lazy[cmd_name])
        return super().get_command(ctx, cmd_name)


CONTEXT_SETTINGS = {"help_option_names": ["--help"], "max_content_width": 100}


@click.group(
    cls=LazyGroup,
    lazy=GROUPS,
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
            traceback.print_exc()
        if original and exc.original_code is not None:
            sys.exit(exc.original_code)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # the one catch-all: the user gets one line, not a traceback
        if _debug_requested(argv):
            traceback.print_exc()
        else:
            click.echo(
                _("podsec: internal error: {err} (run with --debug for details)").format(
                    err=f"{type(exc).__name__}: {exc}"
                ),
                err=True,
            )
        sys.exit(internal_exit)
    sys.exit(rv if isinstance(rv, int) else 0)


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

"""What every ``podsec monitor`` command shares: the Nagios plugin options (thresholds per
syslog priority, -M, -v, -t, --json, --version) turned into one
:class:`~podsec.monitor.plugin.PluginOptions`, the syslog/SMTP sink options, and the step
that runs a check through :func:`podsec.monitor.plugin.run` and exits with its state."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from podsec.cli import context
from podsec.i18n import _

if TYPE_CHECKING:
    from podsec.monitor.plugin import Check, PluginOptions


PLUGIN_SETTINGS = {"help_option_names": ["--help"], "max_content_width": 100}


# ------------------------------------------------------------------------- shared options
def sink_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--syslog-socket",
        metavar="PATH",
        envvar="PODSEC_SYSLOG_SOCKET",
        default="/dev/log",
        show_default=True,
        help=_("Syslog socket to write to (also PODSEC_SYSLOG_SOCKET)."),
    )(func)
    func = click.option(
        "--smtp",
        metavar="HOST:PORT",
        envvar="PODSEC_SMTP",
        default="localhost:25",
        show_default=True,
        help=_("SMTP server for mail (also PODSEC_SMTP)."),
    )(func)
    return func


PluginCommand = Callable[[click.Context, "PluginOptions", bool], NoReturn]


def plugin_options(func: PluginCommand) -> Callable[..., NoReturn]:
    """The options every weighted plugin takes; the command gets them as PluginOptions."""

    @functools.wraps(func)
    def command(**kwargs: Any) -> NoReturn:
        # imported when a plugin runs, not when the module loads (watch-kubeapi needs none)
        from podsec.monitor.plugin import PluginOptions

        levels = {k: kwargs[f"level_{k}"] for k in "afchmldw"}
        verbosity = kwargs["verbosity"]
        if not any(levels.values()) and verbosity == 0 and not sys.argv[1:]:
            verbosity = 2  # the original's defaults with no arguments at all
        options = PluginOptions(
            levels=levels,
            verbosity=verbosity,
            timeout=kwargs["timeout"],
            mailto=kwargs["mailto"],
            syslog_socket=kwargs["syslog_socket"],
            smtp=kwargs["smtp"],
        )
        func(click.get_current_context(), options, kwargs["json_output"])

    helps = {
        "a": _("Syslog Crash (priority 0) when the metric is outside RANGE."),
        "f": _("Syslog Fatal (priority 1) when the metric is outside RANGE."),
        "c": _("Nagios CRITICAL and syslog Critical (priority 2) outside RANGE."),
        "h": _("Syslog High (priority 3) when the metric is outside RANGE."),
        "m": _("Syslog Middle (priority 4) when the metric is outside RANGE."),
        "l": _("Syslog Low (priority 5) when the metric is outside RANGE."),
        "d": _("Syslog Debug (priority 6) when the metric is outside RANGE."),
        "w": _("Nagios WARNING when the metric is outside RANGE."),
    }
    out: Callable[..., NoReturn] = command
    for key in reversed("afchmldw"):
        out = click.option(f"-{key}", f"level_{key}", metavar="RANGE", help=helps[key])(out)
    out = click.option(
        "-M", "--mail", "mailto", metavar="EMAIL", help=_("Mail the report to EMAIL when not OK.")
    )(out)
    out = click.option("-v", "verbosity", count=True, help=_("More long output (-v, -vv, -vvv)."))(
        out
    )
    out = click.option(
        "-t",
        "--timeout",
        type=float,
        default=300.0,
        show_default=True,
        help=_("Give up (UNKNOWN) after this many seconds."),
    )(out)
    out = click.option("--json", "json_output", is_flag=True, help=_("Print the report as JSON."))(
        out
    )
    # Nagios plugins answer --version (exit 3 under the original names, like --help)
    out = click.version_option(package_name="podsec", message="%(prog)s %(version)s")(out)
    return sink_options(out)


def run_plugin(
    ctx: click.Context, check: Check[Any], options: PluginOptions, json_output: bool
) -> NoReturn:
    """The core runs the plugin; this prints what it shows and exits with its state."""
    from podsec.cli import output
    from podsec.monitor import plugin

    def show(report: plugin.Report) -> None:
        if json_output:
            output.emit_json(report)
        else:
            click.echo(report.render(), nl=False)

    code = plugin.run(
        check,
        options,
        settings=lambda: context.get(ctx).settings,
        show=show,
        warn=warn,
    )
    sys.exit(code)


PLUGIN_EPILOG = _(
    "RANGE is a Nagios range [@]START:END ('~' is minus infinity; 100 means 0:100; @ alerts "
    "inside). The metric is the sum of the weights of the rules that fire. Exit codes: 0 OK, "
    "1 WARNING, 2 CRITICAL, 3 UNKNOWN."
)


def warn(text: str) -> None:
    click.echo(text, err=True)

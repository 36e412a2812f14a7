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

# The commands' help texts (one home: each command takes its own from here) so that
# ``podsec monitor --help`` lists them without importing every plugin's module.
HELP: dict[str, str] = {
    "check-policy": _(
        "Check the container trust settings of root and every user with a container storage "
        "(weights 101-107 and 90 x share, as the original podsec)."
    ),
    "check-images": _(
        "Check the images in root's and every user's storage: registries without signatures "
        "(101), images whose signature is missing or does not verify (102), images from "
        "registries outside the policy (103)."
    ),
    "check-authz": _(
        "Check that the revocation webhook answers (podsec rbac enforce-revocation, u7s "
        "control-plane nodes): ask it what the API server asks, at the URL and with the "
        "pinned CA of /etc/kubernetes/podsec-authz/webhook.kubeconfig. CRITICAL when it does "
        "not answer or cannot read revoked.json: Kubernetes then lets revoked certificates "
        "through (an unreachable webhook is 'no opinion', RBAC decides alone). The metric "
        "is the answer's time in ms."
    ),
    "check-keys": _(
        "Check the signer keys the system policy trusts: a key that expires within --days "
        "days (weight 1); an expired, revoked or unreadable key, one weaker than the site's "
        "minimum (RSA below --min-rsa bits, DSA, SHA-1 self-signatures) or without an owner "
        "(not /var/sigstore/keys/USER.pgp|pub of an existing user) (weight 101). Without -w "
        "any finding warns; the default -c 100 makes the weight-101 ones CRITICAL."
    ),
    "check-drift": _(
        "Compare this node's policy.json, registries.d and keys with the registry node's "
        "published ones (--keys-url): a key trusted here that the registry node no longer "
        "trusts (weight 101, CRITICAL with the default -c 100), any other difference (weight "
        "1). The registry node unreachable is UNKNOWN. podsec policy sync fixes the drift."
    ),
    "check-certs": _(
        "Check the client certificates podsec issued (/var/lib/podsec/rbac/issued.json) "
        "against the API server's audit log: a certificate in use that expires within --days "
        "days (weight 1), a revoked certificate whose user was seen after the revocation "
        "(weight 101). Without -w any finding warns; the default -c 100 makes a revoked "
        "certificate in use CRITICAL."
    ),
    "watch-containers": _(
        "Watch the files of every container (root's, each user's rootless storage, "
        "u7s-admin's) and log changes to syslog: home/root/etc as Warning, the rest as Critical."
    ),
    "watch-kubeapi": _(
        "Report Kubernetes API requests answered with a code above 400 (as the seed; --codes "
        "narrows it, e.g. to 401,403) from the apiserver audit log: -d follows the log, -m "
        "(also with no option, as the seed) mails the digest."
    ),
    "check-vuln": _(
        "Scan root's and every user's images with trivy (client/server mode, "
        "U7S_TRIVY_SERVER port 4954) and report HIGH and CRITICAL vulnerabilities."
    ),
    "build-invulnerable-image": _(
        "Build IMAGE from DOCKERFILE (optional; CONTEXT defaults to the current directory) "
        "with podman and scan it with trivy; without DOCKERFILE the existing IMAGE is only "
        "scanned. A vulnerable image built here is removed."
    ),
}


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


def plugin_command(name: str, examples: str) -> Callable[[Callable[..., Any]], click.Command]:
    """``click.command`` for the Nagios plugin ``name``: its help from :data:`HELP`, the
    plugins' exit-code epilog, then the command's own ``examples``."""
    return click.command(
        name,
        context_settings=PLUGIN_SETTINGS,
        help=HELP[name],
        epilog=PLUGIN_EPILOG + "\n\n" + examples,
    )


def warn(text: str) -> None:
    click.echo(text, err=True)

"""What every command receives: settings, the host view, output mode."""

from __future__ import annotations

from dataclasses import dataclass

import click

from podsec import config
from podsec.host.paths import Host


@dataclass(frozen=True)
class CliEnv:
    settings: config.Settings
    host: Host
    json: bool = False
    verbose: int = 0


def build(root: str | None, verbose: int = 0, json_output: bool = False) -> CliEnv:
    settings = config.load(root)
    return CliEnv(settings=settings, host=Host(settings.root), json=json_output, verbose=verbose)


def setup_logging(verbose: int, debug: bool) -> None:
    import logging  # the original names (plugins) never set it up

    level = (
        logging.DEBUG
        if debug or verbose >= 2
        else logging.INFO
        if verbose == 1
        else logging.WARNING
    )
    logger = logging.getLogger("podsec")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("podsec: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def get(ctx: click.Context | None = None) -> CliEnv:
    """The command's environment; built on demand for the original program names, which
    run without the ``podsec`` root group (they honour ``PODSEC_ROOT``)."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, CliEnv):
        root.obj = build(None)  # config.load honours PODSEC_ROOT
    return root.obj


def with_json(ctx: click.Context, json_output: bool) -> CliEnv:
    """The environment with ``--json`` from a subcommand's own flag applied."""
    env = get(ctx)
    if json_output and not env.json:
        env = CliEnv(env.settings, env.host, True, env.verbose)
        ctx.find_root().obj = env
    return env

"""The command line: click groups and the original program names. The only layer that
prints or exits; every command parses, calls one core function and renders the result."""

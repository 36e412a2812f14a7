"""Security monitoring: Nagios plugin runtime, policy/image checks, watchers, trivy."""

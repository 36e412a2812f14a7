"""Kubernetes RBAC users through the API: keys, CSRs, kubeconfigs, bindings, roles."""

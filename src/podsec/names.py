"""The node's well-known names: accounts, groups, host names, URLs and paths.

One home for the vocabulary several areas share (the seed and the original fix these names;
a second spelling drifts). A leaf: it imports nothing. Paths are as the configured system
sees them; callers root them with :meth:`podsec.host.paths.Host.path`.
"""

from __future__ import annotations

# -- accounts and groups
U7S_USER = "u7s-admin"  # the unprivileged owner of every rootless Kubernetes process
U7S_HOME = "/var/lib/u7s-admin"
U7S_BIN = "/usr/libexec/podsec/u7s/bin"  # kubeadm (the wrapper), nsenter_u7s, rootlessctl
GROUP_PODMAN = "podman"  # users allowed to run rootless podman
GROUP_PODMAN_DEV = "podman_dev"  # image makers (sign and push)
# the original's groups are spelled podman_dev; some sites created podman-dev by hand
PODMAN_DEV_ALIASES = (GROUP_PODMAN_DEV, "podman-dev")
GROUP_K8S = "k8s"  # the default group of a Kubernetes user made by podsec rbac
GROUP_WHEEL = "wheel"

# -- the local services and their URLs
REGISTRY_HOST = "registry.local"  # docker-registry, plain HTTP on :80
SIGSTORE_HOST = "sigstore.local"  # nginx on :81 serving /var/sigstore
TRIVY_HOST = "trivy.local"
LOOKASIDE_URL = "http://sigstore.local:81/sigstore/"  # where nodes read signatures
KEYS_URL = "http://sigstore.local:81/keys/"  # published keys and policy

# -- registries.d (the policy files' home is podsec.trust.policy)
SYSTEM_REGISTRIES_D = "/etc/containers/registries.d"
USER_REGISTRIES_D = ".config/containers/registries.d"  # below the user's home

# -- Kubernetes
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
CLUSTER_CA = "/etc/kubernetes/pki/ca.crt"
APISERVER_MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
AUDIT_DIR = "/etc/kubernetes/audit"
AUDIT_LOG = f"{AUDIT_DIR}/audit.log"
AUDIT_POLICY = f"{AUDIT_DIR}/policy.yaml"

# -- podsec's own state shared between areas
REVOKED_FILE = "/var/lib/podsec/rbac/revoked.json"  # written by rbac revoke, read by monitor
EXPIRING_FILE = "/var/lib/podsec/rbac/expiring.json"  # bind --for: removed by expire (timer, u7s)
ISSUED_FILE = "/var/lib/podsec/rbac/issued.json"  # written by create-kubeconfig/renew, read by both
# the revocation authorizer (podsec.webhook.authz): its serving certificate and the
# kubeconfig kube-apiserver reads (--authorization-webhook-config-file)
AUTHZ_DIR = "/etc/kubernetes/podsec-authz"
AUTHZ_KUBECONFIG = f"{AUTHZ_DIR}/webhook.kubeconfig"

"""HA and service exposure: haproxy, keepalived, ingress manifests."""

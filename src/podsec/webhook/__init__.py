"""HTTPS webhooks the API server calls: the serving certificates, the one JSON-over-HTTPS
server, and the revocation authorizer (:mod:`podsec.webhook.authz`). Below the areas: the
node (u7s) runs them and rbac sets them up on existing clusters; the monitor probes them."""

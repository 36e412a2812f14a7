"""registry.local and sigstore.local: services, the OCI distribution client, archives."""

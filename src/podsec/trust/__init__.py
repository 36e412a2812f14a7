"""Image trust: containers-policy.json, registries.d, GPG keys, simple signing, image users."""

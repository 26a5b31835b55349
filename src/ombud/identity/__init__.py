"""Identity: tenants, principals with roles, API keys, and authenticating a request."""

"""Model registry: registered models and their versions (artifact, digest, input schema, status)."""

"""Serving own models: verified artifact loading, input validation, off-loop inference."""

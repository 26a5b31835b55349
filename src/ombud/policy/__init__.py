"""Policy as code: Rego bundles evaluated in-process."""

"""Storage: engines, the declarative base, migrations. Domains own their tables and repositories."""

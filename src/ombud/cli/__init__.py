"""The ``ombud`` command line."""

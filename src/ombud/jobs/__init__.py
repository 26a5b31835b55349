"""The job runner: the one mechanism for background work (see ``docs/jobs.md``)."""

"""The request path: a typed :class:`Call` flowing through an ordered chain of small stages.

Endpoints differ only in which stages they assemble (``OMBUD_GATEWAY__CHAINS``). A stage reads
and enriches the call, and may end it with an explicit outcome: deny (a problem), send to human
review, or flag and continue.
"""

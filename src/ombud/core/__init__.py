"""Pure building blocks shared by every domain: errors, ids, clock. No I/O here."""

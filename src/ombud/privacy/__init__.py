"""Privacy: data subjects, the PII vault, purposes, consents, AI-usage preferences, and the data
access layer every read of subject data goes through."""

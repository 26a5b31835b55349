"""Prediction records: what each call to an own model received and answered, with versions."""

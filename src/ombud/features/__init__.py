"""The feature store: declared views, event ingestion, the offline store and point-in-time
retrieval of training sets."""

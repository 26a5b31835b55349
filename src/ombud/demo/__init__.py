"""The bundled demo: German credit data, a credit-risk model trained from it, and seeding."""

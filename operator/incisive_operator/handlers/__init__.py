"""kopf handlers, one module per kind; each exposes `register(registry, ...)`."""

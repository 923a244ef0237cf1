"""Built-in model backends, each a pluggy plugin."""

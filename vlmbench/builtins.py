"""The core's own registrations (scorers, metrics, document steps), made through the same hooks a plugin uses."""

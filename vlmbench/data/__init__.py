"""Datasets: the concept catalogue, the generated built-in sets, and loading any dataset source."""

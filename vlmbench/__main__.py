"""``python -m vlmbench`` (also ``accelerate launch -m vlmbench``) runs the CLI."""

from vlmbench.cli import console

if __name__ == "__main__":
    raise SystemExit(console())

"""Allow ``python -m scraper``."""

from .cli import run

run()

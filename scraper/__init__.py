"""Sync a vendor's HTML compatibility matrix into versioned YAML snapshots."""

__version__ = "0.1.0"

"""billctl: billing operations for SaaS, from the command line."""

__version__ = "0.1.0"

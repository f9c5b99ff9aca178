"""Pure core: plain data in, plain data out, no I/O.

Nothing in this package imports the database, Redis, Stripe, Typer or Rich.
"""

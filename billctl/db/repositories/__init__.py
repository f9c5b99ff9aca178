"""Repositories: the queries and writes of one kind of record, over a unit of work's session.

One module per area (invoices, tenants, usage, stripe, credits ...). A repository takes a
``UnitOfWork`` (or its session) and returns model objects or plain data; it never commits (the unit
of work does) and never decides business rules (the services do).
"""

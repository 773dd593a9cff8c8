"""Consults, their participants, platform keys and the audit trail: the persisted business rules
that the REST API, the command line and (later) the rooms share."""

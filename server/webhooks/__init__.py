"""Webhooks per the Standard Webhooks specification: the endpoints platforms register
(`endpoints.py`), where they may point (`urls.py`), and the delivery of the outbox's events
(`dispatcher.py`, signed by `signing.py`). The outbox itself is written by the changes it
reports (`server/consults/outbox.py`)."""

"""SQLAlchemy 2 async models, the engine, and Alembic migrations. No business rules here."""

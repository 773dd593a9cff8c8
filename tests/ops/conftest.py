"""Operator commands run as real `triad` processes against the test's database; consults are
made through the real server and socket clients, as in the rooms' tests."""

from tests.rooms.conftest import base_url, people, settings
from tests.turn.conftest import coturn

__all__ = ["base_url", "coturn", "people", "settings"]

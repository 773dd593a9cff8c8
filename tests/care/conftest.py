"""The care workflow runs through the same real server and socket clients as the rooms."""

from tests.rooms.conftest import base_url, people, seated_people, settings

__all__ = ["base_url", "people", "seated_people", "settings"]

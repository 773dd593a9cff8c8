"""Consult rooms: lifecycle, participants, lobby, roles, and (in `media/`) the aiortc SFU.
Plain async Python with no Socket.IO; declares `typing.Protocol`s for what it needs from
outside. Arrives with the rooms issue."""

"""The Socket.IO `/consult` namespace: authenticates sockets and maps events to room and notes
operations. Imports `rooms` and `notes`; never imported by them. Arrives with the rooms issue."""

"""The media plane: an SFU on aiortc that forwards encoded frames (see `sfu.Sfu`), and each
admitted participant's media session (`session.MediaSession`)."""

from .config import IceServer, MediaConfig
from .offers import Offer, TrackInfo
from .session import MediaSink
from .sfu import Sfu, SpeakerListener
from .stats import SfuStats

__all__ = [
    "IceServer",
    "MediaConfig",
    "MediaSink",
    "Offer",
    "Sfu",
    "SfuStats",
    "SpeakerListener",
    "TrackInfo",
]

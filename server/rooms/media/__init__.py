"""The media plane: an SFU on aiortc that forwards encoded frames (see `sfu.Sfu`)."""

from .config import IceServer, MediaConfig
from .peer import Offer, TrackInfo
from .sfu import MediaEvents, Sfu
from .stats import SfuStats

__all__ = ["IceServer", "MediaConfig", "MediaEvents", "Offer", "Sfu", "SfuStats", "TrackInfo"]

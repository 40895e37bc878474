"""Colour clustering of video frames: the frame record, the silhouette, the output video and ``ssp video``."""

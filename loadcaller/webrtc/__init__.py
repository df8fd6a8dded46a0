"""WebRTC calls through aiortc: media paced by the media clock, HTTP offer/answer signalling.

``media`` holds the tracks (:class:`~loadcaller.webrtc.media.ClockTrack` sent,
:class:`~loadcaller.webrtc.media.TrackTap` heard), ``signalling`` the two
offer/answer flavours (Pipecat's SmallWebRTC JSON and WHIP), ``errors`` where
they join the shared error tree. The call itself is ``transports/webrtc.py``.
"""

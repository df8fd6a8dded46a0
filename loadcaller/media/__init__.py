"""The media core every transport and the measurement share (none of it is Twilio's).

- :mod:`.frames`: the 20 ms G.711 frame, its constants, and :class:`PlayedFrame`
  (a frame as the caller hears it, stamped with the instant it began to play);
- :mod:`.outcomes`: call and turn outcome names, one :class:`~enum.StrEnum` each;
- :mod:`.impair`: the packet-impairment protocol and the wrapper that puts it
  around any transport.
"""

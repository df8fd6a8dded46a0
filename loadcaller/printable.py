"""Text from outside (an agent's reasons, a SIP reason phrase) made safe to show.

An agent under test controls strings that reach every output: a SIP reason
phrase, a websocket close reason, a transcript. Two kinds of character in them
break outputs that escaping alone does not fix:

- lone surrogates: the SIP parser decodes its head with ``surrogateescape``
  (a Latin-1 ``486 Occupé`` from an old gateway keeps its byte ``0xe9`` as
  ``\\udce9``), JSON keeps them as ``\\udce9`` escapes, and encoding one as
  UTF-8 fails: the HTML report was not written; JUnit XML got ``&#56553;``,
  which no XML parser accepts;
- control characters: XML 1.0 forbids C0 controls but tab and newlines (a
  JUnit file with ``\\x01`` in a reason is not well-formed), and an ``ESC``
  or a C1 ``CSI`` printed to a terminal or CI log is a terminal command.

:func:`printable` shows each as a visible escape (``\\xe9``, ``\\x1b``), so the
reader still sees which byte the agent sent; what cannot be named as a byte
becomes U+FFFD.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_UNSAFE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _shown(m: re.Match[str]) -> str:
    code = ord(m.group())
    if code <= 0x9F:
        return f"\\x{code:02x}"
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte that was not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return "\ufffd"


def printable(text: object, *, one_line: bool = False) -> str:
    """``str(text)`` with control characters and lone surrogates shown as escapes.

    Tab, newline and carriage return stay, unless ``one_line`` (a console line an
    agent must not be able to break or forge). The result encodes as UTF-8 and is
    legal in XML 1.0.
    """
    return (_UNSAFE_LINE if one_line else _UNSAFE).sub(_shown, str(text))

"""Text from outside shown safely: no control character, no lone surrogate gets through."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

from loadcaller.console import print_summary
from loadcaller.printable import printable
from tests.report.test_html import call, write_run


def test_bytes_and_controls_become_visible_escapes() -> None:
    assert printable("SIP 486 Occup\udce9") == "SIP 486 Occup\\xe9"  # surrogateescape's byte
    assert printable("a\x00b\x1b[2J\x7f\x9bc") == "a\\x00b\\x1b[2J\\x7f\\x9bc"
    assert printable("\ud800 \ufffe \uffff") == "\ufffd \ufffd \ufffd"
    assert printable("é 😀 ]]> <x> tab\there\nline") == "é 😀 ]]> <x> tab\there\nline"
    assert printable("forged\nloadcaller: all passed\r", one_line=True) == (
        "forged\\x0aloadcaller: all passed\\x0d")


def test_every_unsafe_character_leaves_text_that_xml_and_utf8_take() -> None:
    every = "".join(map(chr, [*range(0xA0), *range(0xD800, 0xE000), 0xFFFE, 0xFFFF]))
    shown = printable(every)
    shown.encode("utf-8")  # no lone surrogate left
    doc = ET.tostring(ET.Element("a", b=shown), encoding="utf-8")
    assert ET.fromstring(doc).get("b") == shown  # well-formed, and read back whole


def test_the_console_prints_no_terminal_command_an_agent_sent(tmp_path: Path) -> None:
    reason = "websocket closed 1011 \x1b]0;pwned\x07\x1b[2J\nloadcaller: 0 calls failed"
    write_run(tmp_path, [call(0, outcome="dropped", reason=reason, faults=("slow\x1b[5m",))],
              phases=True)
    out = io.StringIO()
    print_summary(json.loads((tmp_path / "summary.json").read_text()), out)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "1011 \\x1b]0;pwned\\x07\\x1b[2J\\x0aloadcaller: 0 calls failed" in text
    assert "slow\\x1b[5m" in text  # a profile's fault name, in the chaos phase table

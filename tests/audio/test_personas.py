"""Personas, recordings and caller data: from the profile to the frames a call sends."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from loadcaller.audio.g711 import ulaw_decode
from loadcaller.audio.persona import Persona, PersonaAudio
from loadcaller.audio.synth import Voice, render_espeak
from loadcaller.audio.vad import SpeechEnd, SpeechStart, StreamingVad, ulaw_frame_dbfs
from loadcaller.calls.callerdata import target_for_row
from loadcaller.calls.scenario import CallPolicy, Say, Scenario, WaitForAgent
from loadcaller.calls.script import LISTEN_VAD, CallScript
from loadcaller.compile import RunSpec, check_profile, compile_profile
from loadcaller.engine import Engine
from loadcaller.errors import ProfileError
from loadcaller.profile import load_profile
from loadcaller.transports.sip import SipTarget
from loadcaller.transports.twilio_stream import TwilioTarget

SAY_PACK = "      - say: {phrase: hello_order}\n"


def _profile(tmp_path: Path, body: str, steps: str = SAY_PACK) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: t\nseed: 11\n{body}\nscenarios:\n  - name: a\n    steps:\n"
                    f"      - wait_for_agent\n{steps}      - wait_for_agent\n")
    return path


def _compile(path: Path) -> RunSpec:
    return compile_profile(load_profile(path), source=str(path), base_dir=path.parent,
                           cache_dir=path.parent / "cache")


def _errors(path: Path) -> str:
    with pytest.raises(ProfileError) as info:
        _compile(path)
    return str(info.value)


def _runs(ulaw: bytes) -> list[tuple[int, int]]:
    """(start, end) frame indices of the speech runs the listening VAD finds."""
    vad, runs, start = StreamingVad(LISTEN_VAD), [], 0
    frames = [ulaw[i:i + 160] for i in range(0, len(ulaw), 160)]
    for i, frame in enumerate([*frames, *[b"\xff" * 160] * 40]):
        event = vad.feed(ulaw_frame_dbfs(frame), i)
        if isinstance(event, SpeechStart):
            start = event.t_ns
        elif isinstance(event, SpeechEnd):
            runs.append((start, event.t_ns))
    return runs


# ---- voices ------------------------------------------------------------------------

VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+f3", "en-us+m7",
          "fr", "de", "es", "hi"]


def _log_spectrum(ulaw: bytes) -> np.ndarray:
    x = ulaw_decode(ulaw).astype(np.float64)
    frames = x[: len(x) // 256 * 256].reshape(-1, 256) * np.hanning(256)
    return np.log10(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-9)


def test_accents_and_variants_sound_different_for_the_same_text(espeak: str) -> None:
    text = "I would like to change the delivery address of my order."
    audio = {v: render_espeak(text, Voice(name=v)) for v in VOICES}
    spectra = {v: _log_spectrum(a) for v, a in audio.items()}
    for i, a in enumerate(VOICES):
        for b in VOICES[i + 1:]:
            assert audio[a] != audio[b], (a, b)
            # not a copy with a different length: the voices' average spectra differ
            # (or, same spectrum, the timing does: an accent changes vowels and stress)
            spectral = float(np.mean(np.abs(spectra[a] - spectra[b])))
            timing = abs(len(audio[a]) - len(audio[b])) / max(len(audio[a]), len(audio[b]))
            assert spectral > 0.02 or timing > 0.03, (a, b, spectral, timing)


def test_rate_and_pitch_change_the_audio(espeak: str) -> None:
    text = "The order number is four five seven two."
    base = render_espeak(text, Voice(rate=165))
    assert len(render_espeak(text, Voice(rate=110))) > 1.3 * len(base)
    assert render_espeak(text, Voice(pitch=90)) != base


# ---- fillers and pauses ---------------------------------------------------------------

def test_fillers_are_inserted_deterministically() -> None:
    p = PersonaAudio(Persona.model_validate({"name": "h", "fillers": {"probability": 0.5}}),
                     seed=1, base_dir=Path("."))
    said = p.words("I am calling about the order I placed last week").pieces[0]
    assert said == p.words("I am calling about the order I placed last week").pieces[0]
    assert any(w in said.split() for w in ("um,", "uh,", "Um,", "Uh,"))
    assert said.replace("um, ", "").replace("uh, ", "").replace("Um, ", "").replace(
        "Uh, ", "").lower() == "i am calling about the order i placed last week"


def test_mid_sentence_pause_is_long_enough_to_tempt_the_agent(tmp_path: Path,
                                                              espeak: str) -> None:
    path = _profile(tmp_path, "persona: {name: slow, pause: {duration: 1.5s}}",
                    '      - say: "I would like to change my delivery address please"\n')
    utt = _compile(path).personas[0].scenarios[0][0].steps[1]
    assert isinstance(utt, Say)
    runs = _runs(b"".join(utt.utterance.frames))
    gaps = [b[0] - a[1] for a, b in pairwise(runs)]
    # 1.5 s of pause is 75 frames; the listening VAD's 400 ms hangover ends the run
    assert len(runs) >= 2 and max(gaps) >= 70, runs
    assert len(utt.utterance.frames) * 20 >= 1500 + 2 * 500


# ---- the mix, the bed, patience -------------------------------------------------------

MIX = """personas:
  - {name: calm, weight: 3}
  - name: street
    weight: 1
    noise: {kind: street, snr_db: 20}
    band: [300, 3400]
    codec: lowbit
    gain_db: -6
    clip_dbfs: -3
    patience: 2.5s"""


def test_persona_mix_follows_its_weights_with_a_seed(tmp_path: Path) -> None:
    spec = _compile(_profile(tmp_path, MIX))
    engine = Engine(spec, None)
    picks = [engine.pick()[2] for _ in range(4000)]
    share = Counter(picks)["calm"] / len(picks)
    assert abs(share - 0.75) < 0.03, share
    again = Engine(spec, None)
    assert [again.pick()[2] for _ in range(4000)] == picks  # seeded: the same mix again


def test_persona_policy_carries_patience_and_a_noise_bed(tmp_path: Path) -> None:
    spec = _compile(_profile(tmp_path, MIX))
    calm, street = spec.personas
    assert calm.policy.patience_ns is None and calm.policy.noise_bed == ()
    assert street.policy.patience_ns == 2_500_000_000
    bed = street.policy.noise_bed
    assert len(bed) == 398 and all(len(f) == 160 for f in bed)  # 8 s less the cross-fade
    # the bed is noise, not silence, and quieter than the speech over it
    speech = b"".join(street.scenarios[0][0].steps[1].utterance.frames)  # type: ignore[union-attr]
    bed_level = np.mean([ulaw_frame_dbfs(f) for f in bed])
    assert -75 < bed_level < np.mean([ulaw_frame_dbfs(speech[i:i + 160])
                                       for i in range(0, len(speech), 160)]) - 10
    # the persona's speech differs from the plain caller's
    plain = calm.scenarios[0][0].steps[1]
    assert plain.utterance.frames != street.scenarios[0][0].steps[1].utterance.frames  # type: ignore[union-attr]


def test_scenario_naming_a_persona_always_gets_it(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"seed: 1\n{MIX}\nscenarios:\n"
                    "  - {name: a, steps: [{say: {phrase: no}}]}\n"
                    "  - {name: b, persona: street, steps: [{say: {phrase: no}}]}\n")
    engine = Engine(_compile(path), None)
    got = [(s.name, persona) for s, _, persona, _ in (engine.pick() for _ in range(400))]
    assert all(p == "street" for name, p in got if name == "b")
    assert {p for name, p in got if name == "a"} == {"calm", "street"}


def test_script_sends_the_bed_between_utterances_and_times_the_turn_from_speech() -> None:
    bed = tuple(bytes([0x70 + i]) * 160 for i in range(3))
    speech = tuple(bytes([0x10]) * 160 for _ in range(5))
    from loadcaller.calls.utterance import Utterance
    policy = CallPolicy(noise_bed=bed, turn_timeout_ns=200_000_000)
    script = CallScript(Scenario("s", (Say(Utterance("u", speech)), WaitForAgent())),
                        t_answer_ns=0, policy=policy)
    sent = []
    now = 0
    script.step(now, [])
    for _ in range(20):
        if script.finished is not None:
            break
        sent.append(script.next_frame())
        now += 20_000_000
        script.step(now, [])
    assert sent[:5] == list(speech)
    assert set(sent[5:]) <= set(bed) and len(set(sent[5:])) == 3
    # the turn's clock started when the 5th (last speech) frame left, not with the noise
    assert [t.t_speech_end_ns for t in script.turns] == [100_000_000]


# ---- recordings -----------------------------------------------------------------------

def _wav(path: Path, sox: str, seconds: str = "0.6") -> None:
    subprocess.run([sox, "-n", "-r", "16000", "-b", "16", "-c", "1", str(path), "synth",
                    seconds, "sine", "300-900", "vol", "0.5"], check=True)


def test_recording_from_the_manifest_is_played(tmp_path: Path, sox: str) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    _wav(rec / "order.wav", sox)
    (rec / "manifest.csv").write_text("file,text\norder.wav,Where is my order?\n")
    path = _profile(tmp_path, "recordings: rec", "      - say: {recording: order}\n")
    step = _compile(path).scenarios[0].steps[1]
    assert isinstance(step, Say) and step.utterance.key == "order"
    assert 28 <= len(step.utterance.frames) <= 31  # 0.6 s


def test_recording_errors_name_the_line(tmp_path: Path, sox: str) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    _wav(rec / "a.wav", sox)
    (rec / "manifest.csv").write_text("file,text\na.wav,hello\nmissing.wav,gone\n")
    path = _profile(tmp_path, "recordings: rec", "      - say: {recording: a}\n")
    assert "manifest.csv:3: missing.wav: no such file" in _errors(path)
    (rec / "manifest.csv").write_text("file,text\na.wav,hello\n")
    path = _profile(tmp_path, "recordings: rec", "      - say: {recording: b}\n")
    assert "p.yaml:8: scenarios[0].steps[1].say.recording: no recording 'b'" in _errors(path)


# ---- caller data ----------------------------------------------------------------------

def test_csv_values_reach_the_text_the_custom_parameters_and_sip_headers(
        tmp_path: Path, espeak: str) -> None:
    (tmp_path / "callers.csv").write_text("name,account\nAlice,1001\nBob,2002\n")
    path = _profile(tmp_path, "target: {url: 'ws://127.0.0.1:9/m', custom_parameters: "
                    "{account: '{account}', fixed: x}}\ndata: {csv: callers.csv}",
                    '      - say: "Hello, this is {name}."\n')
    spec = _compile(path)
    texts = [row[0].steps[1].utterance.key for row in spec.personas[0].scenarios]  # type: ignore[union-attr]
    assert texts == ["Hello, this is Alice.", "Hello, this is Bob."]
    engine = Engine(spec, None)
    engine._calls = 1
    scenario, _, _, row = engine.pick()
    assert row == 0 and scenario.steps[1].utterance.key == "Hello, this is Alice."  # type: ignore[union-attr]
    transport = asyncio.run(_in_loop(lambda: engine.new_transport("c1", 1)))
    assert transport.stream.custom_parameters == {  # type: ignore[attr-defined]
        "account": "2002", "fixed": "x", "loadcaller_call_id": "c1"}
    sip = SipTarget(url="sip:agent@127.0.0.1:5060", headers={"X-Account": "{account}"})
    assert target_for_row(sip, {"account": "2002"}).headers == {"X-Account": "2002"}  # type: ignore[attr-defined]
    assert isinstance(target_for_row(TwilioTarget(), {"a": "b"}), TwilioTarget)


async def _in_loop(make: Callable[[], object]) -> object:
    return make()


def test_data_orders(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("name\nA\nB\nC\n")
    for order, check in [("sequential", lambda rows: rows[:6] == [0, 1, 2, 0, 1, 2]),
                         ("random", lambda rows: set(rows) == {0, 1, 2}
                          and rows[:6] != [0, 1, 2, 0, 1, 2]),
                         ("per_user", lambda rows: rows == [1] * len(rows))]:
        spec = _compile(_profile(tmp_path, f"data: {{csv: c.csv, order: {order}}}"))
        engine = Engine(spec, None)
        rows = []
        for _ in range(30):
            engine._calls += 1
            rows.append(engine.pick(user=4)[3])
        assert check(rows), (order, rows)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "c.csv:1: the file is empty"),
    (b"name\n", "c.csv:1: a header row and no data rows"),
    (b"name,acct\nAlice,1\nBob\n", "c.csv:3: 1 cells, the header has 2"),
    (b"name\nAl\xe9\n", "c.csv:2: not UTF-8 (byte 0xe9)"),
    (b"name\nok\n\"a\rb\"\n", "c.csv:3: a cell has a control character"),
    (b"na me\nx\n", "c.csv:1: column 'na me' is not a name"),
])
def test_bad_caller_data_is_a_profile_error_with_file_and_line(
        tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "c.csv").write_bytes(content)
    path = _profile(tmp_path, "data: {csv: c.csv}")
    assert message in _errors(path)
    with pytest.raises(ProfileError, match=r"data\.csv"):
        check_profile(load_profile(path), source=str(path), base_dir=tmp_path)


def test_a_variable_the_csv_lacks_names_the_say_line(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("name\nAlice\n")
    path = _profile(tmp_path, "data: {csv: c.csv}", '      - say: "Account {account}"\n')
    err = _errors(path)
    assert "p.yaml:8: scenarios[0].steps[1].say.text: {account} is not a column of c.csv " \
           "(columns: name)" in err


def test_persona_profile_errors(tmp_path: Path) -> None:
    bad = _profile(tmp_path, "personas: [{name: a}, {name: a}]")
    with pytest.raises(ProfileError, match="persona names must be unique"):
        load_profile(bad)
    bad = _profile(tmp_path, "persona: {name: a, noise: {kind: rain}}")
    with pytest.raises(ProfileError, match=r"p.yaml:3: persona.noise.kind"):
        load_profile(bad)
    bad = _profile(tmp_path, "persona: {name: a, noise: {wav: nope.wav}}")
    assert "p.yaml:3: persona: " in _errors(bad) and "nope.wav" in _errors(bad)


def test_persona_survives_the_trip_from_a_worker_process() -> None:
    from loadcaller.calls.call import CallRecord
    from loadcaller.swarm.wire import record_from_wire, record_to_wire

    rec = CallRecord("c1", "twilio", "a", "completed", "scenario finished", persona="scot")
    assert record_from_wire(record_to_wire(rec)).persona == "scot"


def test_validate_names_the_csv_line_and_exits_2(tmp_path: Path) -> None:
    import sys

    (tmp_path / "c.csv").write_text("name,account\nAlice,1\nBob\n")
    path = _profile(tmp_path, "data: {csv: c.csv}", '      - say: "Hi, {name}"\n')
    proc = subprocess.run([sys.executable, "-m", "loadcaller", "validate", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "c.csv:3: 1 cells, the header has 2" in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_summary_counts_each_persona() -> None:
    from loadcaller.calls.call import CallRecord
    from loadcaller.calls.measure import TurnResult
    from loadcaller.calls.results import Results

    results = Results(None)
    ms = 1_000_000
    results.record_call(CallRecord("1", "twilio", "a", "completed", "", persona="calm", turns=[
        TurnResult(0, "answered", 0, 700 * ms, 900 * ms)]))
    results.record_call(CallRecord("2", "twilio", "a", "no_response", "x", persona="street",
                                   turns=[TurnResult(0, "no_response", 0)]))
    results.record_call(CallRecord("3", "twilio", "a", "completed", ""))
    personas = results.summary({}, {})["personas"]
    assert personas["calm"]["calls"] == 1 and personas["calm"]["answered"] == 1
    assert personas["calm"]["latency_ms"]["p50"] == pytest.approx(700, abs=1)
    assert personas["street"] == {**personas["street"], "calls": 1, "failed": 1, "answered": 0}
    assert "personas" not in Results(None).summary({}, {})


def test_a_variable_in_a_nested_say_is_checked_too(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("name\nAlice\n")
    path = _profile(tmp_path, "data: {csv: c.csv}",
                    "      - repeat: {times: 2, steps: [{say: 'Hi {nome}'}]}\n")
    assert "scenarios[0].steps[1].repeat.steps[0].say.text: {nome} is not a column" in \
        _errors(path)

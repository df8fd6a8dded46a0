"""`loadcaller run` over SIP's other signalling transports and target options, against SIPp.

- TCP: SIPp over TCP (``-t t1``) with ``;transport=tcp`` in the target URI.
- TLS: a throwaway CA and server certificate (SAN ``IP:127.0.0.1``,
  ``DNS:localhost``) made here with openssl; verified with ``ca_file``, refused
  without it, accepted with ``tls_verify: false``. Debian's SIPp (sip-tester
  3.6.1) is built without OpenSSL (``-t l1`` answers "To use a TLS transport you
  must compile SIPp with OpenSSL"), so TLS is terminated by :func:`tls_front`, a
  stdlib relay in front of SIPp over TCP: the handshake and the certificate
  checks are OpenSSL's on both sides, and every SIP byte still reaches SIPp.
- Extra headers on every INVITE (also the one retried after a digest
  challenge), checked by SIPp's scenario; a ``${VAR}`` password appears in none
  of loadcaller's output or results.
- The chaos proxy on the RTP path: SIPp's answer sends our RTP to a
  ``kind: udp`` route that relays to its ``-rtp_echo`` port; ``udp_loss`` there
  shows in the call's own media figures (loss, MOS).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.peers import require_binary

from .conftest import read_jsonl
from .sipp_peer import Sipp, free_udp_port, run_loadcaller, sip_profile

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def calls_of(out: Path) -> list[dict]:
    return read_jsonl(out / "calls.jsonl")


def assert_sipp_clean(sipp: Sipp, rc: int | None, calls: int) -> None:
    """SIPp exited 0 with every one of its ``calls`` calls through its scenario."""
    assert rc == 0, sipp.report()
    stats = sipp.stats()
    assert stats["SuccessfulCall(C)"] == str(calls), sipp.report()
    assert stats["FailedCall(C)"] == "0", sipp.report()


async def test_sip_over_tcp_calls_complete(tmp_path):
    async with Sipp(tmp_path / "sipp", "uas", calls=2, rtp_echo=True, tcp=True) as sipp:
        assert sipp.url.endswith(";transport=tcp")
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url.split(";")[0], users=2)
        code, _, err = await run_loadcaller(profile, tmp_path / "r", "--target", sipp.url)
        sipp_rc = await sipp.wait(15)  # the built-in uas lingers 4 s after the BYE
    assert code == 0, err
    calls = calls_of(tmp_path / "r")
    assert [c["outcome"] for c in calls] == ["completed", "completed"], calls
    for call in calls:
        assert call["media"]["packets_received"] > 50 and call["media"]["lost"] == 0
    assert_sipp_clean(sipp, sipp_rc, 2)
    invites = sipp.received("INVITE")
    assert len(invites) == 2
    for invite in invites:
        assert (invite.header("Via") or "").startswith("SIP/2.0/TCP "), invite.text
        assert "transport=tcp" in (invite.header("Contact") or ""), invite.text
    assert len(sipp.received("BYE")) == 2


# ---- TLS ---------------------------------------------------------------------------


async def _openssl(directory: Path, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        require_binary("openssl", "openssl"), *args, cwd=directory,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, f"openssl {args[0]} failed: {err.decode()}"


async def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost:
    (ca.pem, server.pem, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    await _openssl(directory, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
                   "-days", "2", "-subj", "/CN=loadcaller test CA",
                   "-addext", "basicConstraints=critical,CA:TRUE",
                   "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    await _openssl(directory, "req", *ec, "-keyout", "server.key", "-out", "server.csr",
                   "-subj", "/CN=localhost")
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n")
    await _openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
                   "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
                   "-days", "2", "-extfile", "server.ext")
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


@contextlib.asynccontextmanager
async def tls_front(cert: Path, key: Path, upstream_port: int) -> AsyncIterator[int]:
    """TLS on a free port of 127.0.0.1, each connection relayed to 127.0.0.1:upstream_port
    over TCP (SIPp ``-t t1``). Yields the port; handshakes that fail end the connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    tasks: set[asyncio.Task[None]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        both = [asyncio.ensure_future(pipe(reader, up_writer)),
                asyncio.ensure_future(pipe(up_reader, writer))]
        tasks.update(both)
        await asyncio.gather(*both, return_exceptions=True)
        tasks.difference_update(both)

    server = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=ctx)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)


async def test_sip_over_tls_verifies_the_certificate(tmp_path):
    ca, cert, key = await make_certificates(tmp_path / "pki")
    async with Sipp(tmp_path / "sipp", "uas", calls=2, rtp_echo=True, tcp=True) as sipp, \
            tls_front(cert, key, sipp.port) as port:
        async def run(name: str, url: str, fields: str, fails: bool = False) -> list[dict]:
            profile = sip_profile(tmp_path / f"{name}.yaml", url=url, steps=(
                "say: {phrase: hello_order}", "wait_for_agent", "hangup"), target=fields)
            code, out, err = await run_loadcaller(profile, tmp_path / name)
            assert code == (1 if fails else 0), err  # no call connected: exit 1
            assert "Traceback" not in out + err, err[-2000:]
            return calls_of(tmp_path / name)

        # our CA: the server's certificate names localhost
        good = await run("ca", f"sips:service@localhost:{port}", f'ca_file: "{ca}"')
        # verification is on by default: the system CAs do not know ours
        refused = await run("no_ca", f"sips:service@localhost:{port}", "", fails=True)
        # tls_verify: false takes any certificate, here by IP address
        unverified = await run("no_verify", f"sips:service@127.0.0.1:{port}",
                               "tls_verify: false")
        sipp_rc = await sipp.wait(15)
    assert [c["outcome"] for c in good] == ["completed"], good
    assert [c["outcome"] for c in unverified] == ["completed"], unverified
    for call in good + unverified:
        assert call["media"]["packets_received"] > 50, call["media"]
    assert len(refused) == 1 and refused[0]["outcome"] == "failed_setup", refused
    reason = refused[0]["reason"]
    assert "TLS" in reason and "certificate" in reason.lower(), reason
    assert "media" not in refused[0]
    # two calls reached SIPp (the refused one ended at the handshake), both clean
    assert_sipp_clean(sipp, sipp_rc, 2)
    invites = sipp.received("INVITE")
    assert len(invites) == 2
    for invite in invites:
        assert invite.first_line.startswith("INVITE sips:service@"), invite.first_line
        assert (invite.header("Via") or "").startswith("SIP/2.0/TLS "), invite.text


# ---- extra headers, and a secret that stays secret ---------------------------------


async def test_extra_headers_on_every_invite_and_the_password_is_never_written(tmp_path):
    secret = f"pw-{secrets.token_hex(12)}"
    keys = {"password": secret}
    async with Sipp(tmp_path / "sipp", "uas_extra_headers", calls=2, rtp_echo=True,
                    keys=keys) as sipp:
        fields = ("headers: {X-Customer-Tier: gold, X-Campaign: launch}, "
                  'auth_username: alice, auth_password: "${LC_E2E_SIP_PASSWORD}"')
        profile = sip_profile(tmp_path / "p.yaml", url=sipp.url, users=2, target=fields)
        out_dir = tmp_path / "r"
        code, out, err = await run_loadcaller(profile, out_dir,
                                              env={"LC_E2E_SIP_PASSWORD": secret})
        sipp_rc = await sipp.wait(10)
    assert code == 0, err
    calls = calls_of(out_dir)
    assert [c["outcome"] for c in calls] == ["completed", "completed"], calls
    # SIPp checked both headers on all four INVITEs (check_it) and the password
    # (verifyauth): any miss would be a failed SIPp call or a 403
    assert_sipp_clean(sipp, sipp_rc, 2)
    invites = sipp.received("INVITE")
    assert len(invites) == 4
    for invite in invites:
        assert invite.header("X-Customer-Tier") == "gold", invite.text
        assert invite.header("X-Campaign") == "launch", invite.text
    assert sum(1 for i in invites if i.header("Authorization")) == 2
    assert not [m for m in sipp.messages() if m.sent and m.status == 403]
    # the secret: not on stdout or stderr, not in any file of the results
    assert secret not in out and secret not in err
    files = [p for p in out_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"calls.jsonl", "summary.json"}
    leaked = [p.name for p in files if secret.encode() in p.read_bytes()]
    assert not leaked, f"the password is written in {leaked}"


# ---- the chaos proxy on the RTP path -------------------------------------------------


async def calls_through_udp_route(tmp_path: Path, name: str, faults: str,
                                  outcomes: set[str]) -> list[dict]:
    """Two calls whose RTP goes through a chaos ``kind: udp`` route to SIPp's echo and
    back, with ``faults`` (a YAML flow list) on it; each call ends with one of
    ``outcomes``. The calls, each with ``media``."""
    rtp_port = free_udp_port()  # the route's listen port, given in SIPp's SDP
    async with Sipp(tmp_path / f"sipp-{name}", "uas_rtp_port", calls=2, rtp_echo=True,
                    keys={"rtpport": str(rtp_port)}) as sipp:
        profile = sip_profile(tmp_path / f"{name}.yaml", url=sipp.url, users=2)
        profile.write_text(profile.read_text() + f"""seed: 5
chaos:
  routes:
    - {{name: rtp, kind: udp, listen: "127.0.0.1:{rtp_port}",
       upstream: "127.0.0.1:{sipp.media_port}"}}
  faults: {faults}
""")
        code, _, err = await run_loadcaller(profile, tmp_path / name)
        sipp_rc = await sipp.wait(10)
    assert code == 0, err
    assert_sipp_clean(sipp, sipp_rc, 2)
    answers = [m for m in sipp.messages() if m.sent and m.status == 200 and m.body]
    assert len(answers) == 2 and all(f"m=audio {rtp_port} " in a.body for a in answers)
    calls = calls_of(tmp_path / name)
    assert len(calls) == 2 and {c["outcome"] for c in calls} <= outcomes, calls
    for call in calls:
        assert call["media"]["packets_sent"] > 150, call["media"]
    return calls


async def test_udp_loss_in_the_chaos_proxy_shows_in_the_calls_media_figures(tmp_path):
    clean = await calls_through_udp_route(tmp_path, "clean", "[]", {"completed"})
    # with a third of the echo gone the caller's VAD may miss a reply: a turn can
    # time out, and with it the call (give_up_after_no_response: 2)
    lossy = await calls_through_udp_route(
        tmp_path, "lossy", "[{name: lossy, type: udp_loss, route: rtp, loss: 0.2}]",
        {"completed", "no_response"})
    for call in clean:
        media = call["media"]
        assert media["packets_received"] >= 0.9 * media["packets_sent"], media
        assert media["lost"] == 0 and media["loss_ratio"] == 0.0, media
    # 20% each way on an echo: 1 - 0.8 * 0.8 = 0.36 of what we sent does not come back
    for call in lossy:
        media = call["media"]
        assert 0.15 < media["loss_ratio"] < 0.6, media
        assert media["lost"] > 20 and media["malformed"] == 0, media
        assert "rtp_foreign_source" not in media  # the relay answers from the SDP's port
    worst_clean = min(c["media"]["mos"] for c in clean)
    best_lossy = max(c["media"]["mos"] for c in lossy)
    assert best_lossy < worst_clean - 0.5, (clean, lossy)
    # the fault was on for every turn of the lossy run, and for none of the clean one
    turns = read_jsonl(tmp_path / "lossy" / "turns.jsonl")
    assert turns and all(t["faults"] == ["lossy"] for t in turns), turns
    assert all(t["faults"] == [] for t in read_jsonl(tmp_path / "clean" / "turns.jsonl"))
    phases = json.loads((tmp_path / "lossy" / "summary.json").read_text())["phases"]
    assert [p["faults"] for p in phases] == [["lossy"]], phases

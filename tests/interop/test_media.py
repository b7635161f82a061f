#!/usr/bin/env python3
"""Interop tests of what people hear: real pjsua2 phones (PJSIP) call through a
real `tapir serve`, each plays a pure tone of its own frequency, records what
it hears, and the recordings are checked with a Goertzel filter. The calls
are driven by an application over the real HTTP API, and DTMF from a phone
must reach that application as a `digits.received` event on its WebSocket.

- hold: the held party hears tapir's music, not the holder's voice;
- conference of three: each hears the other two and not itself;
- consultation transfer: once the transferor has left, the two remaining
  parties hear each other;
- DTMF: RFC 4733 events and SIP INFO (application/dtmf-relay) from a phone
  become `digits.received`;
- RTCP: each phone reads tapir's reports for its leg (report blocks on its
  own stream, a round trip from the LSR/DLSR echo of its SRs); tapir's own
  figures of both legs show while the call is up
  (`/v1/admin/calls/{call}/quality`), in the CDR once it ends (no loss, a
  round trip each), and `/metrics` counts both legs.

Reuses the harness of test_sip_calls.py (tapir process, phone agents). Run by
scripts/test; every wait is bounded.
"""

import base64
import json
import os
import queue
import shutil
import socket
import struct
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sip_calls import TOKEN, Phone, Tapir, audio_energy, tone_levels  # noqa: E402


class EventStream:
    """The app's `GET /v1/events` WebSocket (RFC 6455), with the standard
    library only: handshake, unmasked text frames in, masked pongs out."""

    def __init__(self, port, since=0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /v1/events?since={since} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise AssertionError(f"event stream refused: {head!r}")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise AssertionError(f"event stream refused: {head!r}")
        self.sock.settimeout(None)
        self.events = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _send(self, opcode, payload=b""):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def _read(self):
        try:
            while True:
                b0, b1 = self._exact(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._exact(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._exact(8))[0]
                payload = self._exact(n)
                opcode = b0 & 0x0F
                if opcode == 0x9:
                    self._send(0xA, payload)
                elif opcode == 0x1:
                    self.events.put(json.loads(payload))
                elif opcode == 0x8:
                    return
        except (OSError, EOFError, ValueError):
            return

    def wait_for(self, pred, timeout=10.0):
        deadline = time.time() + timeout
        for e in self.seen:
            if pred(e):
                self.seen.remove(e)
                return e
        while time.time() < deadline:
            try:
                e = self.events.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if pred(e):
                return e
            self.seen.append(e)
        raise AssertionError(f"no matching event within {timeout}s; saw {self.seen[-20:]}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


ADMIN_TOKEN = "interop-admin"


def admin_get(tapir, path):
    """GET an operator endpoint (JSON)."""
    req = urllib.request.Request(f"http://127.0.0.1:{tapir.http_port}{path}")
    req.add_header("Authorization", f"Bearer {ADMIN_TOKEN}")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def metric(tapir, name):
    """An unlabelled sample of tapir's `/metrics` (0 when absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{tapir.http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def is_call_event(state):
    return lambda e: e.get("event") == "call" and e["state"] == state


class Media(unittest.TestCase):
    def setUp(self):
        self.tapir = Tapir()
        lines = self.tapir.http("GET", "/v1/lines")
        lines = lines.get("lines", lines) if isinstance(lines, dict) else lines
        for line in lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.phones = {}
        self.streams = []

    def tearDown(self):
        for s in self.streams:
            s.close()
        for p in self.phones.values():
            p.close()
        self.tapir.close()
        # Recordings and tapir's data: keep them only when the test failed.
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = result is None or any(
            t is self for t, _ in list(result.failures) + list(result.errors))
        if not failed:
            shutil.rmtree(self.tapir.dir, ignore_errors=True)

    def phone(self, user):
        p = Phone(user, self.tapir.sip_port)
        p.send(cmd="register")
        e = p.wait_for(lambda e: e.get("event") == "reg")
        self.assertEqual(e["code"], 200)
        self.phones[user] = p
        return p

    def calls(self):
        calls = self.tapir.http("GET", "/v1/calls")
        return calls.get("calls", calls) if isinstance(calls, dict) else calls

    def call_at(self, address, state="connected"):
        found = [c for c in self.calls() if c["address"] == address and c["state"] == state]
        self.assertTrue(found, f"no {state} call at {address}: {self.calls()}")
        return found[0]["id"]

    def connected_call(self):
        """1001 calls 1002, 1002 answers."""
        a, b = self.phone("1001"), self.phone("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        a.wait_for(is_call_event("CONFIRMED"))
        b.wait_for(is_call_event("CONFIRMED"))
        self.tapir.wait_states("1001", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        return a, b

    def play(self, phone, hz):
        phone.send(cmd="play", hz=hz)
        phone.wait_for(lambda e: e.get("event") == "playing")

    def hear(self, phones, seconds=1.5):
        """Records what each phone hears (every call it has) for `seconds`,
        after half a second for the media to settle; returns the WAV paths."""
        time.sleep(0.5)
        paths = {}
        for name, p in phones.items():
            paths[name] = os.path.join(self.tapir.dir, f"{name}-{time.monotonic_ns()}.wav")
            p.send(cmd="listen", path=paths[name])
        for p in phones.values():
            p.wait_for(lambda e: e.get("event") == "recording")
        time.sleep(seconds)
        for p in phones.values():
            p.send(cmd="stop_listen")
        for p in phones.values():
            p.wait_for(lambda e: e.get("event") == "stopped")
        return paths

    def assert_hears(self, path, present, absent, who):
        """`present` frequencies each well above every `absent` one."""
        levels = tone_levels(path, list(present) + list(absent))
        for f in present:
            self.assertGreater(levels[f], 1e9, f"{who} hears {f} Hz: {levels}")
            for g in absent:
                self.assertGreater(levels[f], 30 * levels[g],
                                   f"{who} hears {f} Hz and not {g} Hz: {levels}")

    def test_the_held_party_hears_music_not_the_holder(self):
        a, b = self.connected_call()
        self.play(a, 1000)
        self.play(b, 600)
        heard = self.hear({"a": a, "b": b})
        self.assert_hears(heard["b"], [1000], [600], "B before hold")
        self.assert_hears(heard["a"], [600], [1000], "A before hold")
        before = tone_levels(heard["b"], [1000])[1000]
        self.tapir.http("POST", f"/v1/calls/{self.call_at('1001')}/hold")
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        held = self.hear({"b": b})["b"]
        level = tone_levels(held, [1000])[1000]
        self.assertLess(level, before / 100, f"B hears nothing of A while held ({level} vs {before})")
        self.assertGreater(audio_energy(held), 1e3, "B hears music on hold, not silence")
        # Retrieved: A's voice is back for B, the music gone.
        self.tapir.http("POST", f"/v1/calls/{self.call_at('1001', 'onhold')}/unhold")
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "active")
        back = self.hear({"b": b})["b"]
        self.assert_hears(back, [1000], [600], "B after unhold")

    def test_three_party_conference_each_hears_the_two_others_not_itself(self):
        a, b = self.connected_call()
        c = self.phone("1003")
        tones = {"a": 500, "b": 800, "c": 1300}
        phones = {"a": a, "b": b, "c": c}
        for name, p in phones.items():
            self.play(p, tones[name])
        setup = self.tapir.http("POST", f"/v1/calls/{self.call_at('1001')}/setup-conference",
                                {"parties": 3})
        conference, consult = setup["conference_call"], setup["consult_call"]
        self.tapir.http("POST", f"/v1/calls/{consult}/dial", {"digits": "1003"})
        c.wait_for(lambda e: e.get("event") == "incoming")
        c.send(cmd="answer")
        c.wait_for(is_call_event("CONFIRMED"))
        self.tapir.wait_states("1003", ["connected"])
        self.tapir.http("POST", f"/v1/calls/{conference}/add", {"consult_call": consult})
        deadline = time.time() + 10
        while time.time() < deadline:
            states = {x["id"]: x["state"] for x in self.calls()}
            if states.get(consult) == "conferenced":
                break
            time.sleep(0.1)
        self.assertEqual(states.get(consult), "conferenced", states)
        heard = self.hear(phones, seconds=2.0)
        for name in phones:
            others = [tones[o] for o in phones if o != name]
            self.assert_hears(heard[name], others, [tones[name]], name.upper())

    def test_after_a_consultation_transfer_the_remaining_parties_hear_each_other(self):
        a, b = self.connected_call()
        c = self.phone("1003")
        tones = {"a": 500, "b": 800, "c": 1300}
        for name, p in {"a": a, "b": b, "c": c}.items():
            self.play(p, tones[name])
        setup = self.tapir.http("POST", f"/v1/calls/{self.call_at('1001')}/setup-transfer")
        consult = setup["consult_call"]
        self.tapir.http("POST", f"/v1/calls/{consult}/dial", {"digits": "1003"})
        c.wait_for(lambda e: e.get("event") == "incoming")
        c.send(cmd="answer")
        c.wait_for(is_call_event("CONFIRMED"))
        self.tapir.wait_states("1003", ["connected"])
        # While A consults C, B is on hold: it hears music, not A or C.
        held = self.hear({"b": b})["b"]
        original = [x["id"] for x in self.calls()
                    if x["address"] == "1001" and x["id"] != consult and x["state"] != "idle"][0]
        self.tapir.http("POST", f"/v1/calls/{original}/complete-transfer",
                        {"consult_call": consult, "mode": "transfer"})
        self.tapir.wait_states("1002", ["connected"])
        self.tapir.wait_states("1003", ["connected"])
        heard = self.hear({"b": b, "c": c}, seconds=2.0)
        self.assert_hears(heard["b"], [1300], [800, 500], "B after the transfer")
        self.assert_hears(heard["c"], [800], [1300, 500], "C after the transfer")
        # While A consulted C, B was on hold and heard neither of them.
        direct = tone_levels(heard["b"], [1300])[1300]
        levels = tone_levels(held, [500, 1300])
        self.assertLess(max(levels.values()), direct / 100,
                        f"B on hold hears neither A nor C: {levels} vs {direct}")

    def test_each_phone_gets_rtcp_reports_from_tapir(self):
        a, b = self.connected_call()
        self.play(a, 1000)
        self.play(b, 600)
        # pjsua and tapir both report every 5 s or so (randomised): the
        # phone needs a block on its own stream, and one that echoes its SR
        # (LSR/DLSR) for a round trip.
        deadline = time.time() + 25
        seen = {}
        while time.time() < deadline:
            for name, p in (("a", a), ("b", b)):
                p.send(cmd="rtcp")
                seen[name] = p.wait_for(lambda e: e.get("event") == "rtcp")
            if all(s["tx_updates"] > 0 and s["rtt_n"] > 0 for s in seen.values()):
                break
            time.sleep(1)
        for name, s in seen.items():
            self.assertGreater(s["tx_updates"], 0, f"{name}: report blocks on its stream: {s}")
            self.assertGreater(s["rtt_n"], 0, f"{name}: round trip from LSR/DLSR: {s}")
            self.assertLess(s["rtt_mean_us"], 500_000, f"{name}: loopback round trip: {s}")
            self.assertEqual(s["tx_loss"], 0, f"{name}: tapir lost none of its packets: {s}")

        # tapir's side: the phones answered its SRs too, so the live view
        # gets a round trip for both legs (bounded wait: reports every ~5 s).
        call = self.call_at("1001")
        live = None
        while time.time() < deadline + 15:
            live = admin_get(self.tapir, f"/v1/admin/calls/{call}/quality")["quality"]
            if len(live) == 2 and all(q["round_trip_ms"] is not None for q in live):
                break
            time.sleep(0.5)
        self.assertEqual(sorted(q["address"] for q in live), ["1001", "1002"], live)
        for q in live:
            self.assertIsNotNone(q["round_trip_ms"], f"tapir's round trip: {live}")
        a.send(cmd="hangup")
        a.wait_for(is_call_event("DISCONNECTED"))
        b.wait_for(is_call_event("DISCONNECTED"))
        cdr = None
        end = time.time() + 10
        while time.time() < end:
            cdrs = admin_get(self.tapir, "/v1/admin/cdr?address=1001")["cdrs"]
            if cdrs and len(cdrs[0].get("quality", [])) == 2:
                cdr = cdrs[0]
                break
            time.sleep(0.2)
        self.assertIsNotNone(cdr, f"a CDR with both legs' quality: {cdrs}")
        for q in cdr["quality"]:
            who = q["address"]
            self.assertGreater(q["packets_received"], 100, f"{who}: 5 s of RTP at least: {q}")
            self.assertEqual(q["packets_lost"], 0, f"{who}: no loss on loopback: {q}")
            self.assertEqual(q["loss_percent"], 0.0, f"{who}: {q}")
            self.assertIsNotNone(q["round_trip_ms"], f"{who}: round trip: {q}")
            self.assertLess(q["round_trip_ms"], 500, f"{who}: loopback round trip: {q}")
            self.assertLess(q["jitter_ms"], 40, f"{who}: loopback jitter: {q}")
            self.assertIsNotNone(q["peer_fraction_lost"], f"{who}: the phone's report: {q}")
            self.assertEqual(q["peer_packets_lost"], 0, f"{who}: {q}")
        self.assertEqual(sorted(q["address"] for q in cdr["quality"]), ["1001", "1002"])
        # Both legs counted once their media closed (this tapir ran this
        # call only).
        end = time.time() + 10
        while time.time() < end and metric(self.tapir, "tapir_media_legs_total") < 2:
            time.sleep(0.2)
        self.assertEqual(metric(self.tapir, "tapir_media_legs_total"), 2)
        self.assertEqual(metric(self.tapir, "tapir_media_packets_lost_total"), 0)
        # The CDR may hold the far leg's figures as they were when the call
        # ended, taken a few milliseconds before its media closed.
        received = metric(self.tapir, "tapir_media_packets_received_total")
        in_cdr = sum(q["packets_received"] for q in cdr["quality"])
        self.assertGreaterEqual(received, in_cdr)
        self.assertLess(received - in_cdr, 25, "at most half a second more")
        self.assertEqual(metric(self.tapir, "tapir_media_round_trip_seconds_count"), 2)
        self.assertEqual(metric(self.tapir, "tapir_media_jitter_seconds_count"), 2)

    def test_dtmf_from_a_phone_reaches_the_app_as_digits_received(self):
        stream = EventStream(self.tapir.http_port)
        self.streams.append(stream)
        a, b = self.connected_call()
        at_a = self.call_at("1001")
        b.send(cmd="report_dtmf")
        b.wait_for(lambda e: e.get("event") == "reporting_dtmf")
        # RFC 4733 telephone-events (pjsua's default DTMF method).
        a.send(cmd="dtmf", digits="5")
        e = stream.wait_for(lambda e: e.get("type") == "digits.received")
        self.assertEqual((e["call"], e["digits"]), (at_a, "5"))
        got = b.wait_for(lambda e: e.get("event") == "dtmf")
        self.assertEqual(got["digit"], "5")
        # SIP INFO with application/dtmf-relay.
        a.send(cmd="dtmf_info", digits="9")
        e = stream.wait_for(lambda e: e.get("type") == "digits.received")
        self.assertEqual((e["call"], e["digits"]), (at_a, "9"))
        # The far phone gets the INFO digit in its media stream (RFC 4733).
        got = b.wait_for(lambda e: e.get("event") == "dtmf")
        self.assertEqual(got["digit"], "9")
        b.send(cmd="dtmf_info", digits="#")
        e = stream.wait_for(lambda e: e.get("type") == "digits.received"
                            and e["call"] == self.call_at("1002"))
        self.assertEqual(e["digits"], "#")


if __name__ == "__main__":
    unittest.main(verbosity=2)

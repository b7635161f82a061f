#!/usr/bin/env python3
"""Interop tests of SRTP with SDES keys (RFC 4568 over SIP TLS): real pjsua2
phones (PJSIP's own SRTP, not written by this team) register to a real
`tapir serve` over TLS and call each other through its B2BUA, which
terminates SRTP on each leg with keys of its own.

- two phones that require SRTP (pjsua2 `srtpUse = PJMEDIA_SRTP_MANDATORY`)
  call each other: both legs are RTP/SAVP, both phones' SRTP is active, and
  each hears the other's tone (Goertzel over what it recorded);
- a phone that only allows SRTP (`PJMEDIA_SRTP_OPTIONAL`, which offers
  RTP/AVP with keys) starts plain; the application secures the call
  (`POST /v1/calls/{call}/secure`): tapir re-offers that leg RTP/SAVP, the
  phone's stream turns SRTP, and the two still hear each other.

Reuses the harness of test_sip_calls.py (tapir process, phone agents). Run
by scripts/test; every wait is bounded.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sip_calls import HERE, PASSWORDS, Phone, Tapir, tone_levels  # noqa: E402


class SrtpPhone(Phone):
    """A pjsua_phone.py agent over TLS with `--srtp mandatory|optional`."""

    def __init__(self, user, tls_port, srtp):
        self.user = user
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "pjsua_phone.py"), "--user", user,
             "--password", PASSWORDS[user], "--server", f"127.0.0.1:{tls_port}",
             "--run-seconds", "60", "--workdir", tempfile.gettempdir(),
             "--transport", "tls", "--srtp", srtp],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events = []
        self.queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda e: e.get("event") == "ready")


def is_call_event(state):
    return lambda e: e.get("event") == "call" and e["state"] == state


class Srtp(unittest.TestCase):
    def setUp(self):
        self.tapir = Tapir()
        lines = self.tapir.http("GET", "/v1/lines")
        lines = lines.get("lines", lines) if isinstance(lines, dict) else lines
        for line in lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.phones = {}

    def tearDown(self):
        for p in self.phones.values():
            p.close()
        self.tapir.close()
        # Recordings and tapir's data (its log): kept only when the test failed.
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = result is None or any(
            t is self for t, _ in list(result.failures) + list(result.errors))
        if not failed:
            shutil.rmtree(self.tapir.dir, ignore_errors=True)

    def phone(self, user, srtp):
        p = SrtpPhone(user, self.tapir.tls_port, srtp)
        self.phones[user] = p
        p.send(cmd="register")
        e = p.wait_for(lambda e: e.get("event") == "reg")
        self.assertEqual(e["code"], 200, f"{user} registers over TLS")
        return p

    def call(self, a, b):
        """`a` calls 1002 (`b`), which answers."""
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        a.wait_for(is_call_event("CONFIRMED"))
        b.wait_for(is_call_event("CONFIRMED"))
        self.tapir.wait_states("1001", ["connected"])
        self.tapir.wait_states("1002", ["connected"])

    def media_info(self, phone, proto="RTP/SAVP", timeout=10.0):
        """The phone's audio stream, once it runs over `proto`."""
        deadline = time.time() + timeout
        while True:
            phone.send(cmd="media_info")
            info = phone.wait_for(lambda e: e.get("event") == "media_info")
            if info["proto"] == proto or time.time() > deadline:
                return info
            time.sleep(0.2)

    def hear(self, phones, seconds=1.5):
        """What each phone hears for `seconds` (after half a second to settle)."""
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

    def assert_hear_each_other(self, a, b, when):
        for p, hz in ((a, 700), (b, 1100)):
            p.send(cmd="play", hz=hz)
            p.wait_for(lambda e: e.get("event") == "playing")
        heard = self.hear({"a": a, "b": b})
        for who, present, absent in (("a", 1100, 700), ("b", 700, 1100)):
            levels = tone_levels(heard[who], [present, absent])
            self.assertGreater(levels[present], 1e9, f"{who} {when} hears {present} Hz: {levels}")
            self.assertGreater(levels[present], 30 * levels[absent],
                               f"{who} {when} hears {present} Hz, not itself: {levels}")

    def secured_legs(self):
        """How many legs tapir's log says it secured."""
        with open(os.path.join(self.tapir.dir, "tapir.log")) as f:
            return f.read().count("leg media secured")

    def test_phones_requiring_srtp_call_each_other_with_srtp_on_both_legs(self):
        a, b = self.phone("1001", "mandatory"), self.phone("1002", "mandatory")
        self.call(a, b)
        for name, p in (("caller", a), ("callee", b)):
            info = self.media_info(p)
            self.assertEqual(info["proto"], "RTP/SAVP", f"{name}: {info}")
            self.assertTrue(info["srtp"], f"{name}'s SRTP is active: {info}")
        # The caller offered SRTP; tapir offered the callee SRTP with its key.
        self.assertIn("RTP/SAVP", self.media_info(a)["local_sdp"])
        offer_to_b = self.media_info(b)["remote_sdp"]
        self.assertIn("m=audio", offer_to_b)
        self.assertIn("RTP/SAVP", offer_to_b)
        self.assertIn("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:", offer_to_b)
        self.assertGreaterEqual(self.secured_legs(), 2, "tapir secured both legs")
        self.assert_hear_each_other(a, b, "over SRTP")

    def test_the_app_secures_a_call_and_a_plain_leg_turns_srtp(self):
        # pjsua2's optional SRTP offers RTP/AVP (with keys tapir does not
        # take up): the caller's leg starts plain. The callee is reached
        # over TLS, so tapir offers it SRTP, which it requires.
        a, b = self.phone("1001", "optional"), self.phone("1002", "mandatory")
        self.call(a, b)
        before = self.media_info(a, "RTP/AVP")
        self.assertEqual(before["proto"], "RTP/AVP", before)
        self.assertFalse(before["srtp"], f"the caller's leg starts plain: {before}")
        self.assertEqual(self.media_info(b)["proto"], "RTP/SAVP")
        calls = self.tapir.http("GET", "/v1/calls")
        calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
        call = [c for c in calls if c["address"] == "1001"][0]["id"]
        self.tapir.http("POST", f"/v1/calls/{call}/secure")
        info = self.media_info(a)
        self.assertEqual(info["proto"], "RTP/SAVP", f"tapir re-offered SRTP: {info}")
        self.assertTrue(info["srtp"], info)
        detail = self.tapir.http("GET", f"/v1/calls/{call}")
        self.assertTrue(detail["secure"], detail)
        self.assert_hear_each_other(a, b, "after the call was secured")


if __name__ == "__main__":
    unittest.main(verbosity=2)

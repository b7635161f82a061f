#!/usr/bin/env python3
"""Interop test of a route point as an IVR (the call-centre flow), with real
pjsua2 phones (PJSIP) and a real `tapir serve`, the application driving it
over the real HTTP API and WebSocket event stream:

phone 1001 calls route point 2000; the app answers (tapir terminates the
call), plays a prompt — a WAV of a pure tone the test puts in
data_dir/prompts — which the caller's recording must contain, hears the
`call.media` done event when it ends, collects the caller's DTMF "1" as
`digits.received` on the route point's own call, then blind-transfers the
caller to 1002, whose phone rings; 1002 answers and 1001 and 1002 hear each
other.

Reuses the harness of test_sip_calls.py and the event stream of
test_media.py. Run by scripts/test; every wait is bounded.
"""

import math
import os
import struct
import sys
import time
import unittest
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_sip_calls import Phone, Tapir, tone_levels  # noqa: E402
from test_media import EventStream, is_call_event  # noqa: E402

PROMPT_HZ = 1300
PROMPT_SECONDS = 3.0
ROUTE_POINT = '[[lines]]\naddress = "2000"\nkind = "routepoint"\nname = "IVR"\n\n'


def write_prompt(path, hz, seconds, rate=8000):
    """8 kHz mono 16-bit PCM: the format tapir plays as is."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frames = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * n / rate)))
        for n in range(int(seconds * rate)))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


class RoutePointIvr(unittest.TestCase):
    def setUp(self):
        self.tapir = Tapir(lines_extra=ROUTE_POINT)
        write_prompt(os.path.join(self.tapir.dir, "data", "prompts", "menu.wav"),
                     PROMPT_HZ, PROMPT_SECONDS)
        lines = self.tapir.http("GET", "/v1/lines")
        lines = lines.get("lines", lines) if isinstance(lines, dict) else lines
        for line in lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.phones = {}
        self.stream = EventStream(self.tapir.http_port)

    def tearDown(self):
        self.stream.close()
        for p in self.phones.values():
            p.close()
        self.tapir.close()

    def phone(self, user):
        p = Phone(user, self.tapir.sip_port)
        p.send(cmd="register")
        e = p.wait_for(lambda e: e.get("event") == "reg")
        self.assertEqual(e["code"], 200)
        self.phones[user] = p
        return p

    def hear(self, phone, name, seconds=1.5):
        """What `phone` hears for `seconds`; the WAV path."""
        path = os.path.join(self.tapir.dir, f"{name}-{time.monotonic_ns()}.wav")
        phone.send(cmd="listen", path=path)
        phone.wait_for(lambda e: e.get("event") == "recording")
        time.sleep(seconds)
        phone.send(cmd="stop_listen")
        phone.wait_for(lambda e: e.get("event") == "stopped")
        return path

    def test_answer_prompt_digit_then_transfer_to_an_agent(self):
        caller, agent = self.phone("1001"), self.phone("1002")
        caller.send(cmd="call", to="2000")
        new = self.stream.wait_for(
            lambda e: e.get("type") == "call.new" and e["address"] == "2000")
        rp = new["call"]
        self.assertEqual(new["privilege"], "owner")
        answered = self.tapir.http("POST", f"/v1/calls/{rp}/answer", {})
        self.assertEqual(answered["state"], "connected")
        caller.wait_for(is_call_event("CONFIRMED"))

        # An unknown prompt is refused with a TAPI code and a sentence.
        try:
            self.tapir.http("POST", f"/v1/calls/{rp}/play", {"prompt": "no-such-prompt"})
            self.fail("an unknown prompt was accepted")
        except Exception as e:  # urllib's HTTPError carries the body
            body = e.read().decode() if hasattr(e, "read") else str(e)
            self.assertEqual(getattr(e, "code", None), 400, body)
            self.assertIn("invalparam", body)

        played = self.tapir.http("POST", f"/v1/calls/{rp}/play",
                                 {"prompt": "menu", "loop": False})
        self.assertEqual(played["state"], "connected")
        started = time.monotonic()
        time.sleep(0.4)
        heard = self.hear(caller, "caller-prompt")
        levels = tone_levels(heard, [PROMPT_HZ, 1000, 700])
        self.assertGreater(levels[PROMPT_HZ], 1e9, f"the caller hears the prompt: {levels}")
        for other in (1000, 700):
            self.assertGreater(levels[PROMPT_HZ], 30 * levels[other], levels)

        done = self.stream.wait_for(
            lambda e: e.get("type") == "call.media" and e["call"] == rp, timeout=10)
        took = time.monotonic() - started
        self.assertEqual((done["media"], done["state"], done["prompt"]),
                         ("prompt", "done", "menu"))
        self.assertGreater(took, PROMPT_SECONDS - 0.5, "done comes after the prompt played")
        print(f"\n  prompt of {PROMPT_SECONDS:.1f} s reported done after {took:.2f} s",
              file=sys.stderr)
        # After the prompt, the caller hears no tone any more.
        quiet = tone_levels(self.hear(caller, "caller-after", 1.0), [PROMPT_HZ])
        self.assertLess(quiet[PROMPT_HZ], levels[PROMPT_HZ] / 100, quiet)

        # The caller picks option 1: the app hears it on its route point call.
        caller.send(cmd="dtmf", digits="1")
        digits = self.stream.wait_for(
            lambda e: e.get("type") == "digits.received" and e["call"] == rp)
        self.assertEqual(digits["digits"], "1")

        # ... and hands the caller to an agent.
        self.tapir.http("POST", f"/v1/calls/{rp}/blind-transfer", {"to": "1002"})
        agent.wait_for(lambda e: e.get("event") == "incoming")
        self.stream.wait_for(lambda e: e.get("type") == "call.state" and e["call"] == rp
                             and e["state"] == "idle")
        agent.send(cmd="answer")
        agent.wait_for(is_call_event("CONFIRMED"))
        self.tapir.wait_states("1001", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        # The route point's call is over; the app lets go of its handle.
        self.tapir.wait_states("2000", ["idle"])
        self.tapir.http("DELETE", f"/v1/calls/{rp}")
        self.tapir.wait_states("2000", [])

        # The caller and the agent hear each other.
        caller.send(cmd="play", hz=700)
        agent.send(cmd="play", hz=1000)
        caller.wait_for(lambda e: e.get("event") == "playing")
        agent.wait_for(lambda e: e.get("event") == "playing")
        time.sleep(0.5)
        at_caller = tone_levels(self.hear(caller, "caller-agent"), [1000, 700, PROMPT_HZ])
        at_agent = tone_levels(self.hear(agent, "agent-caller"), [700, 1000, PROMPT_HZ])
        self.assertGreater(at_caller[1000], 1e9, f"the caller hears the agent: {at_caller}")
        self.assertGreater(at_caller[1000], 30 * at_caller[PROMPT_HZ], at_caller)
        self.assertGreater(at_agent[700], 1e9, f"the agent hears the caller: {at_agent}")
        self.assertGreater(at_agent[700], 30 * at_agent[PROMPT_HZ], at_agent)


if __name__ == "__main__":
    unittest.main(verbosity=2)

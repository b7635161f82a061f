#!/usr/bin/env python3
"""Interop: tapir behind a real record-routing proxy (Kamailio, Debian's
`kamailio` package, config in tests/interop/kamailio/kamailio.cfg).

Phone 1001 (pjsua2) uses Kamailio as its outbound proxy: it registers to tapir
and places its call through it, and Kamailio record-routes the call. Phones 1002
and 1003 talk to tapir directly. 1001 calls 1002, both hear each other, 1001
holds and resumes, the application holds and resumes 1001's call, 1001
transfers 1002 blind to 1003 (REFER), 1002 and 1003 hang up. Kamailio's own log
then shows that the dialog's requests crossed it both ways: the re-INVITEs and
the REFER from the phone to tapir, and tapir's re-INVITE, NOTIFYs and BYE to
the phone (tapir sends them with the route set as Route headers to the proxy;
a request without them is refused by the proxy with 404).

Run by scripts/test (which installs kamailio when missing). Every wait is
bounded; Kamailio is started on free loopback ports and stopped by its pid.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_sip_calls import Phone, Tapir, free_port, tone_levels  # noqa: E402

KAMAILIO = shutil.which("kamailio") or "/usr/sbin/kamailio"
CONFIG = os.path.join(HERE, "kamailio", "kamailio.cfg")
# One relayed request, as the config's xlog writes it.
RELAY = re.compile(r"relay (\S+) (\S+) -> (\S+) call-id (\S+) cseq (\d+)")


class Kamailio:
    """Kamailio on 127.0.0.1:<free port>, relaying to tapir's SIP port."""

    def __init__(self, tapir_port):
        self.dir = tempfile.mkdtemp(prefix="tapir-kamailio-")
        self.port = free_port()
        self.pidfile = os.path.join(self.dir, "kamailio.pid")
        self.log_path = os.path.join(self.dir, "kamailio.log")
        self.log = open(self.log_path, "w")
        # -DD: the creator stays in the foreground (its pid is ours to stop);
        # -E: the log, xlog lines included, goes to stderr, here a file.
        self.proc = subprocess.Popen(
            [KAMAILIO, "-DD", "-E", "-f", CONFIG, "-l", f"udp:127.0.0.1:{self.port}",
             "-A", f'TAPIR="sip:127.0.0.1:{tapir_port}"', "-A", f"TAPIR_PORT={tapir_port}",
             "-Y", self.dir, "-w", self.dir, "-P", self.pidfile],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait_ready(tapir_port)

    def wait_ready(self, tapir_port):
        """An OPTIONS sent to the proxy comes back answered (by tapir)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        me = s.getsockname()[1]
        try:
            for n in range(30):
                if self.proc.poll() is not None:
                    break
                probe = (
                    f"OPTIONS sip:127.0.0.1:{tapir_port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKprobe{n};rport\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p{n}\r\n"
                    f"To: <sip:127.0.0.1>\r\nCall-ID: probe-{n}@127.0.0.1\r\n"
                    f"CSeq: {n + 1} OPTIONS\r\nContent-Length: 0\r\n\r\n")
                s.sendto(probe.encode(), ("127.0.0.1", self.port))
                try:
                    data, _ = s.recvfrom(4096)
                    if data.startswith(b"SIP/2.0 200"):
                        return
                except socket.timeout:
                    continue
        finally:
            s.close()
        raise AssertionError(f"kamailio did not relay to tapir:\n{self.text()[-3000:]}")

    def text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def relays(self):
        """(method, source, destination, call-id, cseq) of each relayed request."""
        return [m.groups() for m in RELAY.finditer(self.text())]

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.log.close()


class RecordRoute(unittest.TestCase):
    def setUp(self):
        self.tapir = Tapir()
        self.kamailio = Kamailio(self.tapir.sip_port)
        lines = self.tapir.http("GET", "/v1/lines")
        for line in lines.get("lines", lines) if isinstance(lines, dict) else lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.phones = []

    def tearDown(self):
        for p in self.phones:
            p.close()
        self.kamailio.close()
        self.tapir.close()
        if self.failed():
            print(f"kamailio log ({self.kamailio.log_path}):\n"
                  f"{self.kamailio.text()[-4000:]}", file=sys.stderr)

    def failed(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        return bool(result and (result.errors or result.failures))

    def phone(self, user, proxy=None):
        p = Phone(user, self.tapir.sip_port, proxy=proxy)
        self.phones.append(p)
        p.send(cmd="register")
        e = p.wait_for(lambda e: e.get("event") == "reg")
        self.assertEqual(e["code"], 200, f"{user} registers with digest auth")
        return p

    def call_at(self, address, state):
        calls = self.tapir.http("GET", "/v1/calls")
        calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
        return [c for c in calls if c["address"] == address and c["state"] == state][0]

    def hear_each_other(self, a, b):
        """A plays 1000 Hz, B 600 Hz: each hears the other's tone."""
        a.send(cmd="tone", hz=1000)
        b.send(cmd="tone", hz=600)
        time.sleep(0.5)
        rec_a = os.path.join(self.tapir.dir, "a.wav")
        rec_b = os.path.join(self.tapir.dir, "b.wav")
        for p, rec in ((a, rec_a), (b, rec_b)):
            p.send(cmd="record", path=rec)
            p.wait_for(lambda e: e.get("event") == "recording")
        time.sleep(1.5)
        for p in (a, b):
            p.send(cmd="stop_record")
            p.wait_for(lambda e: e.get("event") == "stopped")
        heard_by_b = tone_levels(rec_b, [1000, 600])
        heard_by_a = tone_levels(rec_a, [1000, 600])
        self.assertGreater(heard_by_b[1000], 10 * heard_by_b[600], f"B hears A: {heard_by_b}")
        self.assertGreater(heard_by_a[600], 10 * heard_by_a[1000], f"A hears B: {heard_by_a}")

    def test_a_call_through_the_proxy_keeps_it_on_the_path_both_ways(self):
        proxy = f"127.0.0.1:{self.kamailio.port}"
        a = self.phone("1001", proxy=proxy)
        b = self.phone("1002")
        c = self.phone("1003")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1001", ["connected"])
        self.hear_each_other(a, b)

        # The phone holds and resumes: its re-INVITEs go through the proxy.
        a.send(cmd="hold")
        self.tapir.wait_states("1001", ["onhold"])
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        a.send(cmd="unhold")
        self.tapir.wait_states("1001", ["connected"])
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "active")

        # The application holds the phone's call: tapir's re-INVITE reaches
        # the phone through the proxy.
        call_a = self.call_at("1001", "connected")
        self.tapir.http("POST", f"/v1/calls/{call_a['id']}/hold")
        a.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        self.tapir.http("POST", f"/v1/calls/{call_a['id']}/unhold")
        a.wait_for(lambda e: e.get("event") == "media" and e["status"] == "active")

        # Blind transfer: the REFER goes to tapir through the proxy, tapir's
        # NOTIFYs and its BYE come back through it.
        a.send(cmd="xfer", to="1003")
        c.wait_for(lambda e: e.get("event") == "incoming")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        c.send(cmd="answer")
        c.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1003", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        self.hear_each_other(b, c)
        b.send(cmd="hangup")
        c.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")

        # What crossed the proxy, from its own log.
        tapir = f"127.0.0.1:{self.tapir.sip_port}"
        relays = self.kamailio.relays()
        invites = [r for r in relays if r[0] == "INVITE" and r[2] == f"sip:{tapir}"]
        self.assertTrue(invites, f"the call went through the proxy: {relays}")
        call_id = invites[0][3]
        dialog = [r for r in relays if r[3] == call_id]
        to_tapir = [(m, int(n)) for m, src, dst, _, n in dialog if src != tapir]
        to_phone = [(m, int(n)) for m, src, dst, _, n in dialog if src == tapir]
        methods_to_tapir = [m for m, _ in to_tapir]
        methods_to_phone = [m for m, _ in to_phone]
        self.assertGreaterEqual(methods_to_tapir.count("INVITE"), 3,
                                f"the INVITE and the phone's two re-INVITEs: {to_tapir}")
        self.assertIn("ACK", methods_to_tapir, to_tapir)
        self.assertIn("REFER", methods_to_tapir, to_tapir)
        self.assertGreaterEqual(methods_to_phone.count("INVITE"), 2,
                                f"tapir's hold and resume re-INVITEs: {to_phone}")
        self.assertIn("NOTIFY", methods_to_phone, to_phone)
        self.assertIn("BYE", methods_to_phone, to_phone)
        self.assertNotIn("refused", self.kamailio.text(),
                         "no in-dialog request reached the proxy without its Route")

    def test_a_call_to_a_phone_registered_through_the_proxy_follows_its_path(self):
        # 1001 registers through the proxy, which adds its Path (RFC 3327):
        # tapir's INVITE to 1001 goes to the proxy with the Path as Route.
        proxy = f"127.0.0.1:{self.kamailio.port}"
        a = self.phone("1001", proxy=proxy)
        b = self.phone("1002")
        b.send(cmd="call", to="1001")
        a.wait_for(lambda e: e.get("event") == "incoming")
        a.send(cmd="answer")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1001", ["connected"])
        self.hear_each_other(a, b)
        b.send(cmd="hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")

        tapir = f"127.0.0.1:{self.tapir.sip_port}"
        relays = self.kamailio.relays()
        invites = [r for r in relays if r[0] == "INVITE" and r[1] == tapir]
        self.assertTrue(invites, f"tapir's INVITE to 1001 crossed the proxy: {relays}")
        call_id = invites[0][3]
        to_phone = [m for m, src, _, cid, _ in relays if cid == call_id and src == tapir]
        self.assertIn("ACK", to_phone, relays)
        self.assertIn("BYE", to_phone, relays)
        self.assertNotIn("refused", self.kamailio.text(),
                         "no in-dialog request reached the proxy without its Route")


if __name__ == "__main__":
    if not os.path.exists(KAMAILIO):
        sys.exit("kamailio is not installed (scripts/test installs Debian's kamailio)")
    unittest.main(verbosity=2)

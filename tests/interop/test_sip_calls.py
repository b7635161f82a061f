#!/usr/bin/env python3
"""Interop tests: real pjsua2 phones (PJSIP, not written by this team) register
to a real `tapir serve` over loopback and call each other through its B2BUA,
while an application watches and drives the calls over the real HTTP API.

Run by scripts/test after the Rust tests (it needs `pip install pjsua2-python`,
which scripts/test does). Every wait is bounded.
"""

import json
import os
import queue
import threading
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TAPIR = os.environ.get("TAPIR_BIN", os.path.join(TARGET, "debug", "tapir"))
TOKEN = "interop-app-token"
PASSWORDS = {"1001": "pw-1001-secret", "1002": "pw-1002-secret", "1003": "pw-1003-secret"}


def free_port(kind=socket.SOCK_DGRAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_udp_and_tcp_port():
    """A loopback port free for both UDP and TCP (tapir's SIP listens on both)."""
    for _ in range(50):
        port = free_port()
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
    raise AssertionError("no loopback port free for both UDP and TCP")


class Phone:
    """One pjsua_phone.py process, driven over its stdin/stdout."""

    def __init__(self, user, sip_port, transport="udp", proxy=None):
        self.user = user
        # proxy: host:port of an outbound proxy every request goes through.
        proxy_args = ["--proxy", proxy] if proxy else []
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "pjsua_phone.py"), "--user", user,
             "--password", PASSWORDS[user], "--server", f"127.0.0.1:{sip_port}",
             "--run-seconds", "60", "--workdir", tempfile.gettempdir(),
             "--transport", transport] + proxy_args,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events = []
        self.queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda e: e.get("event") == "ready")

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.queue.put(json.loads(line))
            except ValueError:
                pass  # pjsua's own log lines

    def wait_for(self, pred, timeout=10.0):
        """The first event (seen before or arriving now) that matches."""
        deadline = time.time() + timeout
        for e in self.events:
            if pred(e):
                self.events.remove(e)
                return e
        while time.time() < deadline:
            try:
                e = self.queue.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if pred(e):
                return e
            self.events.append(e)
        raise AssertionError(f"{self.user}: no matching event within {timeout}s; saw {self.events}")

    def close(self):
        try:
            self.send(cmd="quit")
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except Exception:
                pass


class Tapir:
    # Where the HTTP API listens (a subclass may listen elsewhere).
    http_host = "127.0.0.1"

    def __init__(self, sip_extra="", lines_extra=""):
        self.dir = tempfile.mkdtemp(prefix="tapir-interop-")
        # The ports are free when chosen but may be taken before tapir binds
        # them: a tapir that exits at start is started again on new ports.
        for _ in range(3):
            if self._start(sip_extra, lines_extra):
                return
        with open(os.path.join(self.dir, "tapir.log")) as f:
            tail = f.read()[-3000:]
        raise AssertionError(f"tapir did not start:\n{tail}")

    def _start(self, sip_extra, lines_extra):
        path = os.path.join(self.dir, "tapir.toml")
        with open(path, "w") as f:
            f.write(self.config(sip_extra, lines_extra))
        self.log = open(os.path.join(self.dir, "tapir.log"), "w")
        self.proc = subprocess.Popen([TAPIR, "serve", "--config", path],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                return False
            try:
                self.http("GET", "/healthz", auth=False)
                return True
            except Exception:
                time.sleep(0.1)
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.log.close()
        return False

    def config(self, sip_extra, lines_extra):
        """Choose free ports and write the configuration for them."""
        self.sip_port = free_udp_and_tcp_port()
        self.tls_port = free_port(socket.SOCK_STREAM)
        self.http_port = free_port(socket.SOCK_STREAM)
        lines = "".join(
            f'[[lines]]\naddress = "{a}"\nkind = "phone"\npassword = "{p}"\nname = "Phone {a}"\n'
            f'auto_answer = {"true" if a == "1001" else "false"}\n\n'
            for a, p in PASSWORDS.items())
        config = (
            f'data_dir = "{self.dir}/data"\n'
            f'[sip]\nlisten = ["udp:127.0.0.1:{self.sip_port}", "tcp:127.0.0.1:{self.sip_port}",'
            f' "tls:127.0.0.1:{self.tls_port}"]\n'
            f'domain = "127.0.0.1"\n'
            + sip_extra +
            f'[http]\nlisten = "127.0.0.1:{self.http_port}"\nadmin_token = "interop-admin"\n\n'
            + lines + lines_extra +
            f'[[apps]]\nname = "crm"\ntoken = "{TOKEN}"\nlines = ["*"]\n'
            f'privileges = ["owner", "monitor"]\n')
        return config

    def http(self, method, path, body=None, auth=True):
        req = urllib.request.Request(f"http://{self.http_host}:{self.http_port}{path}",
                                     method=method)
        if auth:
            req.add_header("Authorization", f"Bearer {TOKEN}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, data, timeout=5) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def call_states(self, address):
        calls = self.http("GET", "/v1/calls")
        calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
        return sorted(c["state"] for c in calls if c["address"] == address)

    def wait_states(self, address, states, timeout=10.0):
        deadline = time.time() + timeout
        seen = None
        while time.time() < deadline:
            seen = self.call_states(address)
            if seen == sorted(states):
                return
            time.sleep(0.1)
        raise AssertionError(f"{address}: wanted {states}, saw {seen}")

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class SipCalls(unittest.TestCase):
    def setUp(self):
        self.tapir = Tapir()
        for line in self.tapir.http("GET", "/v1/lines")["lines"] if isinstance(
                self.tapir.http("GET", "/v1/lines"), dict) else self.tapir.http("GET", "/v1/lines"):
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.phones = {}

    def tearDown(self):
        for p in self.phones.values():
            p.close()
        self.tapir.close()

    def phone(self, user, transport="udp"):
        port = self.tapir.tls_port if transport == "tls" else self.tapir.sip_port
        p = Phone(user, port, transport)
        p.send(cmd="register")
        e = p.wait_for(lambda e: e.get("event") == "reg")
        self.assertEqual(e["code"], 200, f"{user} registers with digest auth")
        self.phones[user] = p
        return p

    def test_wrong_password_never_registers(self):
        global PASSWORDS
        saved = PASSWORDS["1003"]
        PASSWORDS["1003"] = "wrong"
        try:
            p = Phone("1003", self.tapir.sip_port)
            self.phones["x"] = p
            p.send(cmd="register")
            e = p.wait_for(lambda e: e.get("event") == "reg")
            self.assertIn(e["code"], (401, 403))
        finally:
            PASSWORDS["1003"] = saved

    def lines_by_address(self):
        lines = self.tapir.http("GET", "/v1/lines")
        lines = lines.get("lines", lines) if isinstance(lines, dict) else lines
        return {l["address"]: l for l in lines}

    def metrics(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.tapir.http_port}/metrics")
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read().decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def test_registrations_show_in_the_lines_of_the_api(self):
        before = self.lines_by_address()
        self.assertEqual(before["1001"]["registration"], "unregistered")
        self.assertEqual(before["1001"]["contacts"], [])
        a = self.phone("1001")
        b = self.phone("1002", transport="tcp")
        lines = self.lines_by_address()
        self.assertEqual(lines["1001"]["registration"], "registered")
        self.assertEqual([c["transport"] for c in lines["1001"]["contacts"]], ["udp"])
        self.assertEqual([c["transport"] for c in lines["1002"]["contacts"]], ["tcp"])
        self.assertGreater(lines["1001"]["contacts"][0]["expires_in"], 0)
        self.assertEqual(lines["1003"]["registration"], "unregistered")
        # Prometheus: registrations and SIP messages by method and class.
        metrics = self.metrics()
        self.assertEqual(metrics.get("tapir_registrations"), 2.0, metrics)
        self.assertGreaterEqual(metrics.get(
            'tapir_sip_messages_total{direction="in",method="REGISTER",kind="request"}', 0), 4)
        self.assertGreaterEqual(metrics.get(
            'tapir_sip_messages_total{direction="out",method="REGISTER",kind="4xx"}', 0), 2)
        self.assertGreaterEqual(metrics.get(
            'tapir_sip_messages_total{direction="out",method="REGISTER",kind="2xx"}', 0), 2)
        a.send(cmd="unregister")
        a.wait_for(lambda e: e.get("event") == "reg")
        deadline = time.time() + 5
        while time.time() < deadline and self.lines_by_address()["1001"]["contacts"]:
            time.sleep(0.1)
        self.assertEqual(self.lines_by_address()["1001"]["registration"], "unregistered")
        self.assertEqual(self.lines_by_address()["1002"]["registration"], "registered")
        del b

    def test_call_answer_and_hang_up_from_the_callee(self):
        a, b = self.phone("1001"), self.phone("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        self.tapir.wait_states("1002", ["offering"])
        self.tapir.wait_states("1001", ["ringback"])
        b.send(cmd="answer")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1001", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        b.send(cmd="hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        self.tapir.wait_states("1001", ["idle"])

    def test_busy_callee(self):
        a, b = self.phone("1001"), self.phone("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="reject")
        self.tapir.wait_states("1001", ["busy"])
        a.send(cmd="hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")

    def test_caller_cancels(self):
        a, b = self.phone("1001"), self.phone("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        a.send(cmd="hangup")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        self.tapir.wait_states("1002", ["idle"])

    def test_app_makes_a_call_between_two_phones(self):
        a, b = self.phone("1001"), self.phone("1002")
        call = self.tapir.http("POST", "/v1/calls", {"from": "1001", "to": "1002"})
        a.wait_for(lambda e: e.get("event") == "incoming" and e["auto"])
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        self.tapir.wait_states("1001", ["connected"])
        cid = call.get("id") or call.get("call", {}).get("id")
        self.tapir.http("POST", f"/v1/calls/{cid}/hold")
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        self.tapir.http("POST", f"/v1/calls/{cid}/unhold")
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "active")
        self.tapir.http("POST", f"/v1/calls/{cid}/drop")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")

    def test_phone_over_tcp_calls_and_is_called(self):
        a = self.phone("1001", transport="tcp")
        b = self.phone("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1001", ["connected"])
        a.send(cmd="hangup")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        # tapir reaches the TCP phone over its connection.
        b.send(cmd="call", to="1001")
        a.wait_for(lambda e: e.get("event") == "incoming")
        a.send(cmd="answer")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        # The first call stays listed (idle) until the app deallocates it.
        self.tapir.wait_states("1001", ["connected", "idle"])
        b.send(cmd="hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")

    def test_phone_over_tls_calls_and_is_called(self):
        a = self.phone("1001", transport="tls")
        b = self.phone("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1001", ["connected"])
        b.send(cmd="hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        b.send(cmd="call", to="1001")
        a.wait_for(lambda e: e.get("event") == "incoming")
        a.send(cmd="answer")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        a.send(cmd="hangup")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")

    def connected_call(self):
        """1001 calls 1002 and 1002 answers."""
        a, b = self.phone("1001"), self.phone("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1002", ["connected"])
        return a, b

    def test_caller_hangs_up(self):
        a, b = self.connected_call()
        a.send(cmd="hangup")
        b.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        self.tapir.wait_states("1002", ["idle"])

    def test_phone_holds_and_retrieves_by_itself(self):
        a, b = self.connected_call()
        a.send(cmd="hold")
        self.tapir.wait_states("1001", ["onhold"])
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        a.send(cmd="unhold")
        self.tapir.wait_states("1001", ["connected"])
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "active")

    def test_phone_blind_transfer_with_refer(self):
        a, b = self.connected_call()
        c = self.phone("1003")
        a.send(cmd="xfer", to="1003")
        c.wait_for(lambda e: e.get("event") == "incoming")
        # The transferor is released once tapir has taken the transfer over.
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        c.send(cmd="answer")
        c.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1003", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        calls = self.tapir.http("GET", "/v1/calls")
        calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
        at_c = [x for x in calls if x["address"] == "1003"][0]
        self.assertEqual(at_c["reason"], "transfer")

    def test_media_is_anchored_and_both_sides_hear_each_other(self):
        """Each phone plays its own tone; tapir relays RTP between its legs,
        so each hears the other's tone (and not its own); on hold the held
        phone hears tapir's music instead."""
        a, b = self.connected_call()
        a.send(cmd="tone", hz=1000)
        b.send(cmd="tone", hz=600)
        time.sleep(0.5)
        rec_a = os.path.join(self.tapir.dir, "a.wav")
        rec_b = os.path.join(self.tapir.dir, "b.wav")
        a.send(cmd="record", path=rec_a)
        b.send(cmd="record", path=rec_b)
        a.wait_for(lambda e: e.get("event") == "recording")
        b.wait_for(lambda e: e.get("event") == "recording")
        time.sleep(1.5)
        a.send(cmd="stop_record")
        b.send(cmd="stop_record")
        a.wait_for(lambda e: e.get("event") == "stopped")
        b.wait_for(lambda e: e.get("event") == "stopped")
        heard_by_b = tone_levels(rec_b, [1000, 600])
        heard_by_a = tone_levels(rec_a, [1000, 600])
        self.assertGreater(heard_by_b[1000], 10 * heard_by_b[600], f"B hears A's tone: {heard_by_b}")
        self.assertGreater(heard_by_a[600], 10 * heard_by_a[1000], f"A hears B's tone: {heard_by_a}")
        # The app holds 1001's call: 1002 hears tapir's music, not 1001's tone.
        calls = self.tapir.http("GET", "/v1/calls")
        calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
        at_a = [c for c in calls if c["address"] == "1001" and c["state"] == "connected"][0]
        self.tapir.http("POST", f"/v1/calls/{at_a['id']}/hold")
        b.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        time.sleep(0.5)
        rec_held = os.path.join(self.tapir.dir, "b-held.wav")
        b.send(cmd="record", path=rec_held)
        b.wait_for(lambda e: e.get("event") == "recording")
        time.sleep(1.5)
        b.send(cmd="stop_record")
        b.wait_for(lambda e: e.get("event") == "stopped")
        held = tone_levels(rec_held, [1000, 600])
        self.assertLess(held[1000], heard_by_b[1000] / 100, f"held: no tone from 1001: {held}")
        self.assertGreater(audio_energy(rec_held), 1e3, "held: music on hold, not silence")


def read_wav(path):
    import struct
    import wave
    deadline = time.time() + 5
    while True:  # the recorder finishes its WAV header when it is destroyed
        try:
            with wave.open(path, "rb") as w:
                rate = w.getframerate()
                raw = w.readframes(w.getnframes())
            break
        except (wave.Error, EOFError):
            if time.time() > deadline:
                raise
            time.sleep(0.1)
    samples = struct.unpack("<%dh" % (len(raw) // 2), raw)
    return rate, samples[len(samples) // 2:]


def audio_energy(path):
    """Mean square of the second half of a recording."""
    _, samples = read_wav(path)
    return sum(x * x for x in samples) / max(1, len(samples))


def tone_levels(path, freqs):
    """Goertzel power of each frequency over a recorded WAV (second half)."""
    import math
    rate, samples = read_wav(path)
    out = {}
    for f in freqs:
        k = 2 * math.cos(2 * math.pi * f / rate)
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + k * s1 - s2, s1
        out[f] = s1 * s1 + s2 * s2 - k * s1 * s2
    return out


if __name__ == "__main__":
    unittest.main(verbosity=2)

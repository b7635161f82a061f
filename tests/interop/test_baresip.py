#!/usr/bin/env python3
"""Interop with a second, independent SIP user agent: baresip (Debian's
`baresip-core`, built on libre), driven over its `ctrl_tcp` module, calling
pjsua2 phones through a real `tapir serve`.

baresip puts a non-loopback address in its SDP even when bound to loopback, so
this file must run inside a private network namespace that holds only `lo` and
a port-less bridge with 127.0.0.2 (../shared/PEERS.md); scripts/test does that
with `unshare -n` and this file refuses to run outside one.

libre 1.1 (baresip 1.0) gives up a registration with ENOSYS as soon as any
challenge names an algorithm other than MD5, even when an MD5 challenge is
offered beside it, so tapir is configured here with
`digest_algorithms = ["MD5"]`; docs/operations.md says so for operators.
"""

import json
import os
import queue
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import test_sip_calls as base

MD5_ONLY = 'digest_algorithms = ["MD5"]\n'


def in_private_netns():
    """True inside the namespace scripts/test makes: 127.0.0.2 on br0 and no
    interface leading out."""
    names = [name for _, name in socket.if_nameindex()]
    return sorted(names) == ["br0", "lo"]


class Baresip:
    """One baresip process with its own config directory, driven over
    ctrl_tcp (netstring-framed JSON commands, responses and events)."""

    def __init__(self, user, sip_port):
        self.user = user
        self.dir = tempfile.mkdtemp(prefix=f"baresip-{user}-")
        self.ctrl_port = base.free_port(socket.SOCK_STREAM)
        local = base.free_port()
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(
                "poll_method epoll\n"
                f"sip_listen 127.0.0.2:{local}\n"
                "audio_source ausine,600\n"
                "ausrc_srate 48000\n"
                "ausrc_channels 2\n"
                "auplay_srate 48000\n"
                f"audio_player aufile,{self.dir}/heard.wav\n"
                f"audio_alert aufile,{self.dir}/alert.wav\n"
                "module_path /usr/lib/baresip/modules\n"
                "module g711.so\n"
                "module ausine.so\n"
                "module aufile.so\n"
                "module_app account.so\n"
                "module_app menu.so\n"
                "module_app ctrl_tcp.so\n"
                f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f"<sip:{user}@127.0.0.1:{sip_port}>;auth_pass={base.PASSWORDS[user]};"
                    "regint=600;audio_codecs=PCMU\n")
        self.launch([], "127.0.0.1")

    def launch(self, options, ctrl_host):
        """Start baresip (with `options`) on the config in self.dir and
        connect to its ctrl_tcp on `ctrl_host`."""
        self.log = open(os.path.join(self.dir, "baresip.log"), "w")
        self.proc = subprocess.Popen(["baresip", *options, "-f", self.dir],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            try:
                self.sock = socket.create_connection((ctrl_host, self.ctrl_port), timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError(f"baresip's ctrl_tcp did not come up; see {self.dir}")
                time.sleep(0.1)
        self.sock.settimeout(None)
        self.queue = queue.Queue()
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b":" in buf:
                head, rest = buf.split(b":", 1)
                if not head.isdigit() or len(rest) < int(head) + 1:
                    break
                n = int(head)
                msg, buf = rest[:n], rest[n + 1:]
                try:
                    self.queue.put(json.loads(msg))
                except ValueError:
                    pass

    def command(self, command, params=""):
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def wait_event(self, kind, timeout=10.0):
        deadline = time.time() + timeout
        for e in self.events:
            if e.get("type") == kind:
                self.events.remove(e)
                return e
        while time.time() < deadline:
            try:
                e = self.queue.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                break
            if e.get("type") == kind:
                return e
            self.events.append(e)
        raise AssertionError(f"baresip {self.user}: no {kind} within {timeout}s; "
                             f"saw {self.events}; log in {self.dir}")

    def close(self):
        try:
            self.command("quit")
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.sock.close()
        self.log.close()


class BaresipCalls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not in_private_netns():
            raise RuntimeError("run inside `unshare -n` with only lo and br0 (see scripts/test)")

    def setUp(self):
        self.tapir = base.Tapir(sip_extra=MD5_ONLY)
        lines = self.tapir.http("GET", "/v1/lines")
        for line in lines.get("lines", lines) if isinstance(lines, dict) else lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()
        self.tapir.close()

    def registration(self, address):
        lines = self.tapir.http("GET", "/v1/lines")
        lines = lines.get("lines", lines) if isinstance(lines, dict) else lines
        return next(l for l in lines if l["address"] == address)["registration"]

    def baresip(self, user):
        b = Baresip(user, self.tapir.sip_port)
        self.peers.append(b)
        # baresip may register before ctrl_tcp is connected (its REGISTER_OK
        # event is then gone): ask tapir instead.
        deadline = time.time() + 10
        while self.registration(user) != "registered":
            if time.time() > deadline:
                raise AssertionError(f"baresip {user} did not register; log in {b.dir}")
            time.sleep(0.1)
        return b

    def pjsua(self, user):
        p = base.Phone(user, self.tapir.sip_port)
        self.peers.append(p)
        p.send(cmd="register")
        self.assertEqual(p.wait_for(lambda e: e.get("event") == "reg")["code"], 200)
        return p

    def dial(self, b, user):
        b.command("dial", f"sip:{user}@127.0.0.1:{self.tapir.sip_port}")

    def pjsua_calls_baresip(self):
        b = self.baresip("1003")
        a = self.pjsua("1001")
        a.send(cmd="call", to="1003")
        b.wait_event("CALL_INCOMING")
        self.tapir.wait_states("1003", ["offering"])
        return a, b

    def connected(self):
        a, b = self.pjsua_calls_baresip()
        b.command("accept")
        b.wait_event("CALL_ESTABLISHED")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1001", ["connected"])
        self.tapir.wait_states("1003", ["connected"])
        return a, b

    def test_baresip_registers_and_unregisters(self):
        self.assertEqual(self.registration("1003"), "unregistered")
        b = self.baresip("1003")
        self.peers.remove(b)
        b.close()  # baresip unregisters when it quits
        deadline = time.time() + 5
        while self.registration("1003") != "unregistered" and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.registration("1003"), "unregistered")

    def test_pjsua_calls_baresip_and_baresip_hangs_up(self):
        a, b = self.connected()
        b.command("hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        self.tapir.wait_states("1003", ["idle"])

    def test_baresip_calls_pjsua_and_pjsua_hangs_up(self):
        b = self.baresip("1003")
        a = self.pjsua("1001")
        self.dial(b, "1001")
        a.wait_for(lambda e: e.get("event") == "incoming")
        self.tapir.wait_states("1003", ["ringback"])
        a.send(cmd="answer")
        b.wait_event("CALL_ESTABLISHED")
        self.tapir.wait_states("1003", ["connected"])
        a.send(cmd="hangup")
        b.wait_event("CALL_CLOSED")
        self.tapir.wait_states("1003", ["idle"])

    def test_baresip_cancels_before_the_answer(self):
        b = self.baresip("1003")
        a = self.pjsua("1001")
        self.dial(b, "1001")
        a.wait_for(lambda e: e.get("event") == "incoming")
        b.command("hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")
        self.tapir.wait_states("1001", ["idle"])

    def test_baresip_is_busy(self):
        a, b = self.pjsua_calls_baresip()
        b.command("hangup")
        self.tapir.wait_states("1001", ["busy"])
        a.send(cmd="hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED")

    def test_baresip_holds_and_resumes(self):
        a, b = self.connected()
        b.command("hold")
        a.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        self.tapir.wait_states("1003", ["onhold"])
        b.command("resume")
        a.wait_for(lambda e: e.get("event") == "media" and e["status"] == "active")
        self.tapir.wait_states("1003", ["connected"])

    def test_baresip_blind_transfers_with_refer(self):
        c = self.pjsua("1002")
        a, b = self.connected()
        b.command("transfer", f"sip:1002@127.0.0.1:{self.tapir.sip_port}")
        c.wait_for(lambda e: e.get("event") == "incoming")
        c.send(cmd="answer")
        c.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        b.wait_event("CALL_CLOSED")
        self.tapir.wait_states("1001", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        self.tapir.wait_states("1003", ["idle"])  # until the app deallocates it

    def test_pjsua_hears_baresip(self):
        """baresip's `ausine` source plays 600 Hz; pjsua's recording of the
        call through tapir's anchored media must contain it."""
        a, b = self.connected()
        rec = os.path.join(tempfile.mkdtemp(prefix="tapir-baresip-audio-"), "a.wav")
        time.sleep(0.5)
        a.send(cmd="record", path=rec)
        a.wait_for(lambda e: e.get("event") == "recording")
        time.sleep(2.0)
        a.send(cmd="stop_record")
        a.wait_for(lambda e: e.get("event") == "stopped")
        levels = base.tone_levels(rec, [600, 1000])
        self.assertGreater(levels[600], 10 * levels[1000], f"pjsua hears 600 Hz: {levels}")


if __name__ == "__main__":
    unittest.main(verbosity=2)

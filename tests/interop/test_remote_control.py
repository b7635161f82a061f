#!/usr/bin/env python3
"""Answer and hold on phone lines, end to end.

A line configured `remote_control = "broadsoft"` is played by SIPp (a SIP
stack this team did not write) running tests/interop/sipp/broadsoft_phone.xml:
the app's answer, hold and unhold reach it as NOTIFYs (`Event: talk` /
`Event: hold`) and it answers, holds and resumes by itself, so its own screen
stays truthful; the scenario fails on anything else tapir sends it. A pjsua2
phone is the other party. On a phone that cannot be asked, answer is refused
with `operationunavail` and a sentence that says why.
"""

import json
import os
import socket
import subprocess
import time
import unittest
import urllib.error

import test_sip_calls as base

SIPP_DIR = os.path.join(base.HERE, "sipp")
REGISTER_XML = os.path.join(base.ROOT, "bench", "sip", "register.xml")
BROADSOFT_LINE = ('[[lines]]\naddress = "1004"\nkind = "phone"\npassword = "pw-1004-secret"\n'
                  'remote_control = "broadsoft"\n\n')
# SIPp answers only the first challenge it reads, and only MD5.
MD5_FIRST = 'digest_algorithms = ["MD5", "SHA-256"]\n'


class RemoteControl(unittest.TestCase):
    def setUp(self):
        self.tapir = base.Tapir(sip_extra=MD5_FIRST, lines_extra=BROADSOFT_LINE)
        lines = self.tapir.http("GET", "/v1/lines")
        for line in lines.get("lines", lines) if isinstance(lines, dict) else lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.phones = []
        self.procs = []

    def tearDown(self):
        for p in self.phones:
            p.close()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        self.tapir.close()

    def pjsua(self, user):
        p = base.Phone(user, self.tapir.sip_port)
        self.phones.append(p)
        p.send(cmd="register")
        self.assertEqual(p.wait_for(lambda e: e.get("event") == "reg")["code"], 200)
        return p

    def call_at(self, address):
        calls = self.tapir.http("GET", "/v1/calls")
        calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
        found = [c for c in calls if c["address"] == address]
        self.assertEqual(len(found), 1, f"one call at {address}: {calls}")
        return found[0]["id"]

    def api_error(self, method, path, body=None):
        try:
            self.tapir.http(method, path, body)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())["error"]
        self.fail(f"{method} {path} succeeded")

    def test_a_remote_controlled_phone_answers_holds_and_resumes_when_asked(self):
        uas_port = base.free_port()
        log_dir = os.path.join(self.tapir.dir, "sipp")
        os.makedirs(log_dir)
        phone = subprocess.Popen(
            ["sipp", "-sf", os.path.join(SIPP_DIR, "broadsoft_phone.xml"), "-s", "1004",
             "-i", "127.0.0.1", "-p", str(uas_port), "-m", "1", "-timeout", "60s",
             "-timeout_error", "-trace_err", "-error_file", os.path.join(log_dir, "errors.log"),
             "-nostdin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=log_dir)
        self.procs.append(phone)
        reg = subprocess.run(
            ["sipp", f"127.0.0.1:{self.tapir.sip_port}", "-sf", REGISTER_XML, "-s", "1004",
             "-au", "1004", "-ap", "pw-1004-secret", "-key", "uas_port", str(uas_port),
             "-i", "127.0.0.1", "-p", str(base.free_port()), "-m", "1", "-timeout", "10s",
             "-timeout_error", "-nostdin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=log_dir, timeout=30)
        self.assertEqual(reg.returncode, 0, "SIPp registers 1004 with digest auth")
        a = self.pjsua("1001")
        a.send(cmd="call", to="1004")
        self.tapir.wait_states("1004", ["offering"])
        call = self.call_at("1004")
        self.tapir.http("POST", f"/v1/calls/{call}/answer")
        # The phone answers by itself after tapir's NOTIFY (Event: talk).
        a.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("1004", ["connected"])
        self.tapir.wait_states("1001", ["connected"])
        # Hold from the app: the phone holds itself (Event: hold, then its own
        # sendonly re-INVITE); the far party hears music on hold.
        self.tapir.http("POST", f"/v1/calls/{call}/hold")
        self.tapir.wait_states("1004", ["onhold"])
        a.wait_for(lambda e: e.get("event") == "media" and e["status"] == "remote_hold")
        # Hold is idempotent: a second hold asks the phone nothing more (the
        # scenario would fail on another NOTIFY hold).
        self.tapir.http("POST", f"/v1/calls/{call}/hold")
        self.tapir.http("POST", f"/v1/calls/{call}/unhold")
        self.tapir.wait_states("1004", ["connected"])
        a.wait_for(lambda e: e.get("event") == "media" and e["status"] == "active")
        a.send(cmd="hangup")
        phone.wait(timeout=30)
        errors = ""
        path = os.path.join(log_dir, "errors.log")
        if os.path.exists(path):
            with open(path) as f:
                errors = f.read()[-3000:]
        self.assertEqual(phone.returncode, 0, f"the SIPp phone's scenario completed: {errors}")

    def test_answer_on_a_phone_that_cannot_be_asked_is_refused_with_a_reason(self):
        a, b = self.pjsua("1001"), self.pjsua("1002")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        self.tapir.wait_states("1002", ["offering"])
        call = self.call_at("1002")
        status, error = self.api_error("POST", f"/v1/calls/{call}/answer")
        self.assertEqual(error["code"], "operationunavail")
        self.assertIn("answer it on the phone", error["message"])
        self.assertIn(status, (400, 409))
        self.tapir.wait_states("1002", ["offering"])  # nothing changed
        b.send(cmd="answer")
        self.tapir.wait_states("1002", ["connected"])


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Busy lamps, end to end, with a SIP stack this team did not write.

SIPp plays a desk phone's BLF key (tests/interop/sipp/blf_watcher.xml):
1001 watches 1002. An unknown event package gets 489; SUBSCRIBE
Event: dialog is challenged and admitted with 1001's digest; the NOTIFYs'
headers and dialog-info XML are checked; a refresh and an unsubscribe
follow. While it runs, the operator's GET /v1/admin/subscriptions lists
it; afterwards the list is empty. A watcher whose line's `watch` list
leaves 1002 out is refused (403), and tapir keeps serving.

A BLF pickup key: while 1001's pjsua2 phone calls 1002's, whose phone
rings, SIPp (tests/interop/sipp/blf_pickup_key.xml) watches 1002 for 1003
and waits for the NOTIFY that shows the ringing dialog; 1003's pjsua2 phone
then picks the call up with an INVITE whose Replaces carries that NOTIFY's
call-id and tags. 1003 talks to 1001, 1002's phone stops ringing, and TAPI
sees a pickup.
"""

import json
import os
import re
import subprocess
import time
import unittest
import urllib.request

import test_sip_calls as base

SIPP_DIR = os.path.join(base.HERE, "sipp")
# SIPp answers only the first challenge it reads, and only MD5.
MD5_FIRST = 'digest_algorithms = ["MD5", "SHA-256"]\n'


class BusyLamps(unittest.TestCase):
    def setUp(self):
        self.tapir = base.Tapir(sip_extra=MD5_FIRST)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        self.tapir.close()

    def watcher(self, user, target, scenario="blf_watcher.xml", extra=()):
        log_dir = os.path.join(self.tapir.dir, f"sipp-{user}-{target}")
        os.makedirs(log_dir, exist_ok=True)
        p = subprocess.Popen(
            ["sipp", f"127.0.0.1:{self.tapir.sip_port}", "-sf", os.path.join(SIPP_DIR, scenario),
             *extra,
             "-s", target, "-au", user, "-ap", base.PASSWORDS[user], "-key", "watcher", user,
             # SIPp's digest names the server's address as its uri unless told.
             "-auth_uri", f"{target}@127.0.0.1:{self.tapir.sip_port}",
             "-i", "127.0.0.1", "-p", str(base.free_port()), "-m", "1", "-timeout", "30s",
             "-timeout_error", "-trace_err", "-error_file", os.path.join(log_dir, "errors.log"),
             "-nostdin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=log_dir)
        self.procs.append(p)
        return p, log_dir

    def admin(self, method, path, body=None):
        req = urllib.request.Request(
            f"http://{self.tapir.http_host}:{self.tapir.http_port}{path}", method=method)
        req.add_header("Authorization", "Bearer interop-admin")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, data, timeout=5) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def errors(self, log_dir):
        path = os.path.join(log_dir, "errors.log")
        if os.path.exists(path):
            with open(path) as f:
                return f.read()[-3000:]
        return ""

    def test_a_sipp_blf_key_subscribes_with_digest_refreshes_and_unsubscribes(self):
        p, log_dir = self.watcher("1001", "1002")
        p.wait(timeout=60)
        self.assertEqual(p.returncode, 0, f"the SIPp watcher's scenario completed: {self.errors(log_dir)}")
        # Unsubscribed: nothing is left.
        listed = self.admin("GET", "/v1/admin/subscriptions")
        self.assertEqual(listed["subscriptions"], [], listed)

    def test_a_watch_list_refuses_others_and_tapir_keeps_serving(self):
        self.admin("PUT", "/v1/admin/lines/1003",
                   {"address": "1003", "kind": "phone", "watch": ["1001"]})
        p, log_dir = self.watcher("1003", "1002")
        p.wait(timeout=60)
        self.assertNotEqual(p.returncode, 0, "1003 may not watch 1002")
        self.assertIn("403", self.errors(log_dir))
        # A phone allowed to watch still does.
        p, log_dir = self.watcher("1001", "1003")
        p.wait(timeout=60)
        self.assertEqual(p.returncode, 0, self.errors(log_dir))

    def phone(self, user):
        p = base.Phone(user, self.tapir.sip_port)
        self.procs.append(p.proc)
        self.phones.append(p)
        p.send(cmd="register")
        self.assertEqual(p.wait_for(lambda e: e.get("event") == "reg")["code"], 200)
        return p

    def test_a_pjsua2_phone_picks_up_with_the_tags_of_a_notify(self):
        self.phones = []
        try:
            self.pickup()
        finally:
            for p in self.phones:
                p.close()

    def pickup(self):
        lines = self.tapir.http("GET", "/v1/lines")
        for line in lines.get("lines", lines) if isinstance(lines, dict) else lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        a, b, c = self.phone("1001"), self.phone("1002"), self.phone("1003")
        # 1003's BLF key watches 1002 (SIPp) until 1002 rings.
        key, log_dir = self.watcher("1003", "1002", "blf_pickup_key.xml",
                                    extra=["-trace_msg", "-message_file", "messages.log"])
        deadline = time.time() + 10
        while not self.admin("GET", "/v1/admin/subscriptions")["subscriptions"]:
            self.assertLess(time.time(), deadline, f"the key subscribes: {self.errors(log_dir)}")
            time.sleep(0.1)
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        key.wait(timeout=30)
        self.assertEqual(key.returncode, 0, f"the key saw 1002 ring: {self.errors(log_dir)}")
        with open(os.path.join(log_dir, "messages.log"), errors="replace") as f:
            trace = f.read()
        ringing = [m for m in trace.split("NOTIFY sip:") if "<state>early</state>" in m]
        self.assertTrue(ringing, trace[-3000:])
        attr = lambda name: re.search(rf'{name}="([^"]+)"', ringing[-1]).group(1)
        call_id, local_tag, remote_tag = attr("call-id"), attr("local-tag"), attr("remote-tag")
        # The key: INVITE 1002 with Replaces naming the ringing dialog
        # (to-tag: the NOTIFY's local-tag, tapir's; from-tag: its remote-tag).
        c.send(cmd="call", to="1002",
               headers={"Replaces": f"{call_id};to-tag={local_tag};from-tag={remote_tag}"})
        c.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "CONFIRMED")
        b.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "DISCONNECTED")
        a.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "CONFIRMED")
        calls = self.tapir.http("GET", "/v1/calls")
        calls = calls.get("calls", calls) if isinstance(calls, dict) else calls
        at_1003 = [x for x in calls if x["address"] == "1003" and x["state"] == "connected"]
        self.assertEqual(len(at_1003), 1, calls)
        self.assertEqual(at_1003[0]["reason"], "pickup", "TAPI sees a pickup")
        self.assertEqual(at_1003[0].get("connected", {}).get("address"), "1001", calls)
        c.send(cmd="hangup")
        a.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "DISCONNECTED")


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""Busy lamps, end to end, with a SIP stack this team did not write.

SIPp plays a desk phone's BLF key (tests/interop/sipp/blf_watcher.xml):
1001 watches 1002. An unknown event package gets 489; SUBSCRIBE
Event: dialog is challenged and admitted with 1001's digest; the NOTIFYs'
headers and dialog-info XML are checked; a refresh and an unsubscribe
follow. While it runs, the operator's GET /v1/admin/subscriptions lists
it; afterwards the list is empty. A watcher whose line's `watch` list
leaves 1002 out is refused (403), and tapir keeps serving.
"""

import json
import os
import subprocess
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

    def watcher(self, user, target, scenario="blf_watcher.xml"):
        log_dir = os.path.join(self.tapir.dir, f"sipp-{user}-{target}")
        os.makedirs(log_dir, exist_ok=True)
        p = subprocess.Popen(
            ["sipp", f"127.0.0.1:{self.tapir.sip_port}", "-sf", os.path.join(SIPP_DIR, scenario),
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


if __name__ == "__main__":
    unittest.main(verbosity=2)

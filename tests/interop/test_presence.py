#!/usr/bin/env python3
"""Presence watched by a SIP client this team did not write: baresip's
`presence` module (Debian's baresip-core) SUBSCRIBEs, with its digest, to
the presence (RFC 3856, PIDF) of a contact marked `;presence=p2p`, and
shows what tapir NOTIFYs in its contact list (`/contacts` over ctrl_tcp).

baresip 1003 watches 1002, a pjsua2 phone: online while 1002 is
registered and free, busy while 1001's pjsua2 phone calls it and they
talk, online again after the hang-up, busy while do-not-disturb is set
through the API, and offline once 1002 unregisters. tapir's operator list
shows the subscription.

Like test_baresip.py, this runs inside a private network namespace
(scripts/test: tests/interop/in-private-netns) and with MD5 digest only.
"""

import os
import re
import time
import unittest
import urllib.request
import json

import test_sip_calls as base
from test_baresip import MD5_ONLY, Baresip, in_private_netns


class PresenceWatcher(Baresip):
    """A baresip whose contact list holds `watched`, watched by presence."""

    def __init__(self, user, sip_port, watched):
        self.watched = watched
        self.sip_port = sip_port
        super().__init__(user, sip_port)

    def launch(self, options, ctrl_host):
        with open(os.path.join(self.dir, "config"), "a") as f:
            f.write("module_app contact.so\nmodule_app presence.so\n")
        with open(os.path.join(self.dir, "contacts"), "w") as f:
            f.write(f'"Phone {self.watched}" <sip:{self.watched}@127.0.0.1:{self.sip_port}>'
                    ";presence=p2p\n")
        super().launch(options, ctrl_host)

    def contacts(self):
        """The text of baresip's contact list (presence and URI per line)."""
        self.command("contacts")
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                e = self.queue.get(timeout=max(0.01, deadline - time.time()))
            except Exception:
                break
            if e.get("response"):
                return e.get("data", "")
            self.events.append(e)
        raise AssertionError(f"baresip {self.user}: no answer to /contacts; log in {self.dir}")

    def presence(self):
        """The presence baresip shows for the watched contact."""
        # A line reads `>      Online Phone 1002 <sip:...>` (colours in
        # ANSI escapes; `>` marks the current contact).
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.contacts())
        for line in text.splitlines():
            if f"sip:{self.watched}@" in line:
                found = re.search(r"\b(Online|Offline|Busy|Unknown)\b", line)
                return found.group(1).lower() if found else line
        return None


class Presence(unittest.TestCase):
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

    def pjsua(self, user):
        p = base.Phone(user, self.tapir.sip_port)
        self.peers.append(p)
        p.send(cmd="register")
        self.assertEqual(p.wait_for(lambda e: e.get("event") == "reg")["code"], 200)
        return p

    def admin(self, path):
        req = urllib.request.Request(
            f"http://{self.tapir.http_host}:{self.tapir.http_port}{path}")
        req.add_header("Authorization", "Bearer interop-admin")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def shows(self, watcher, wanted, timeout=10.0):
        deadline = time.time() + timeout
        seen = None
        while time.time() < deadline:
            seen = watcher.presence()
            if seen == wanted:
                return
            time.sleep(0.2)
        raise AssertionError(f"baresip shows 1002 {seen!r}, not {wanted!r}; log in {watcher.dir}")

    def test_baresip_sees_presence_change(self):
        b = self.pjsua("1002")
        w = PresenceWatcher("1003", self.tapir.sip_port, "1002")
        self.peers.append(w)
        deadline = time.time() + 10
        while not self.admin("/v1/admin/subscriptions")["subscriptions"]:
            self.assertLess(time.time(), deadline, f"baresip subscribes; log in {w.dir}")
            time.sleep(0.1)
        sub = self.admin("/v1/admin/subscriptions")["subscriptions"][0]
        self.assertEqual((sub["watcher"], sub["address"], sub["event"]), ("1003", "1002", "presence"))
        self.shows(w, "online")
        # 1001 calls 1002, who answers: busy; the hang-up: online again.
        a = self.pjsua("1001")
        a.send(cmd="call", to="1002")
        b.wait_for(lambda e: e.get("event") == "incoming")
        b.send(cmd="answer")
        a.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "CONFIRMED")
        self.shows(w, "busy")
        a.send(cmd="hangup")
        b.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "DISCONNECTED")
        self.shows(w, "online")
        # Do-not-disturb set by an app: busy; cleared: online.
        self.tapir.http("PUT", "/v1/addresses/1002/forwarding",
                        {"rules": [{"mode": "unconditional"}]})
        self.shows(w, "busy")
        self.tapir.http("PUT", "/v1/addresses/1002/forwarding", {"rules": []})
        self.shows(w, "online")
        # 1002 unregisters: offline.
        b.send(cmd="unregister")
        self.shows(w, "offline")


if __name__ == "__main__":
    unittest.main(verbosity=2)

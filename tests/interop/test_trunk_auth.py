#!/usr/bin/env python3
"""A trunk with digest credentials, end to end.

The carrier is SIPp (a SIP stack this team did not write). With
tests/interop/sipp/trunk_carrier_407.xml it authenticates as a proxy: 407,
and tapir's Proxy-Authorization is checked here with Python's hashlib from
SIPp's message trace (SIPp's own verifyauth reads Authorization only). With
trunk_carrier_401.xml it authenticates as a UAS: 401, and SIPp's own digest
code checks tapir's Authorization. Either way the carrier then answers and
takes the BYE. A pjsua2 phone dials the external number; with a wrong
password the carrier challenges again, tapir does not try a third time and
the phone's call ends.
"""

import hashlib
import os
import re
import shutil
import subprocess
import unittest

import test_sip_calls as base

SIPP_DIR = os.path.join(base.HERE, "sipp")
USER = "trunk-user"
PASSWORD = "trunk-secret"
NUMBER = "0049301234"


def trunk_config(port, password):
    return ('[[lines]]\naddress = "9000"\nkind = "trunk"\nname = "Carrier"\n\n'
            f'[[trunks]]\nname = "carrier"\nhost = "127.0.0.1"\nport = {port}\n'
            f'transport = "udp"\nusername = "{USER}"\npassword = "{password}"\n'
            'address = "9000"\n\n')


def invites(trace):
    """The INVITEs SIPp received, as (request line, headers text)."""
    found = []
    for block in re.split(r"\n-{5,}.*\n", trace):
        m = re.search(r"^(INVITE sip:\S+ SIP/2\.0)\r?\n(.*?)\r?\n\r?\n", block, re.M | re.S)
        if m:
            found.append((m.group(1), m.group(2)))
    return found


def digest_params(header):
    return {k.lower(): q or b for k, q, b in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', header)}


class TrunkAuth(unittest.TestCase):
    def start(self, password, scenario):
        self.port = base.free_port()
        self.tapir = base.Tapir(lines_extra=trunk_config(self.port, password))
        self.log_dir = os.path.join(self.tapir.dir, "sipp")
        os.makedirs(self.log_dir)
        self.carrier = subprocess.Popen(
            ["sipp", "-sf", os.path.join(SIPP_DIR, scenario),
             "-i", "127.0.0.1", "-p", str(self.port), "-m", "1", "-timeout", "30s",
             "-timeout_error", "-key", "password", PASSWORD,
             "-trace_msg", "-message_file", os.path.join(self.log_dir, "messages.log"),
             "-trace_err", "-error_file", os.path.join(self.log_dir, "errors.log"),
             "-trace_logs", "-log_file", os.path.join(self.log_dir, "actions.log"),
             "-nostdin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.log_dir)
        lines = self.tapir.http("GET", "/v1/lines")
        for line in lines.get("lines", lines) if isinstance(lines, dict) else lines:
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.phone = base.Phone("1001", self.tapir.sip_port)
        self.phone.send(cmd="register")
        self.assertEqual(self.phone.wait_for(lambda e: e.get("event") == "reg")["code"], 200)

    def tearDown(self):
        self.phone.close()
        if self.carrier.poll() is None:
            self.carrier.kill()
            self.carrier.wait(timeout=5)
        self.tapir.close()
        # tapir's data and SIPp's traces: kept only when the test failed.
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = result is None or any(
            t is self for t, _ in list(result.failures) + list(result.errors))
        if not failed:
            shutil.rmtree(self.tapir.dir, ignore_errors=True)

    def read(self, name):
        path = os.path.join(self.log_dir, name)
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def call_through_the_carrier(self, scenario, header):
        """1001 calls out; returns the digest params of tapir's second INVITE."""
        self.start(PASSWORD, scenario)
        self.phone.send(cmd="call", to=NUMBER)
        self.phone.wait_for(lambda e: e.get("event") == "call" and e["state"] == "CONFIRMED")
        self.tapir.wait_states("9000", ["connected"])
        self.tapir.wait_states("1001", ["connected"])
        self.phone.send(cmd="hangup")
        self.carrier.wait(timeout=30)
        self.assertEqual(self.carrier.returncode, 0,
                         f"the carrier's scenario completed: {self.read('errors.log')[-3000:]}")
        sent = invites(self.read("messages.log"))
        self.assertEqual(len(sent), 2, sent)
        (first_line, first), (line, headers) = sent
        self.assertTrue(first_line.startswith(f"INVITE sip:{NUMBER}@127.0.0.1:{self.port}"),
                        first_line)
        self.assertNotIn("Authorization", first)
        auth = re.search(rf"^{header}:\s*Digest (.*)$", headers, re.M | re.I)
        self.assertIsNotNone(auth, headers)
        p = digest_params(auth.group(1))
        p["request_uri"] = line.split(" ")[1]
        return p

    def test_tapir_answers_the_carriers_407_with_a_correct_digest(self):
        p = self.call_through_the_carrier("trunk_carrier_407.xml", "Proxy-Authorization")
        # The digest checked independently of tapir's code.
        self.assertEqual(p["username"], USER)
        self.assertEqual(p["realm"], "carrier.test")
        self.assertEqual(p["uri"], p["request_uri"])
        self.assertEqual(p["qop"], "auth")
        self.assertEqual(p.get("algorithm", "MD5").upper(), "MD5")

        def md5(text):
            return hashlib.md5(text.encode()).hexdigest()
        ha1 = md5(f"{USER}:carrier.test:{PASSWORD}")
        ha2 = md5(f"INVITE:{p['uri']}")
        expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        self.assertEqual(p["response"], expected)

    def test_tapir_answers_the_carriers_401_and_sipps_digest_code_accepts_it(self):
        # The scenario itself fails (a second 401, no 200) unless SIPp's
        # verifyauth accepts the credentials.
        p = self.call_through_the_carrier("trunk_carrier_401.xml", "Authorization")
        self.assertEqual(p["username"], USER)

    def test_a_wrong_password_is_challenged_again_and_the_call_fails(self):
        self.start("not-the-password", "trunk_carrier_401.xml")
        self.phone.send(cmd="call", to=NUMBER)
        ended = self.phone.wait_for(
            lambda e: e.get("event") == "call" and e["state"] == "DISCONNECTED", timeout=15)
        self.assertNotEqual(ended["code"], 200)
        self.carrier.wait(timeout=30)
        self.assertEqual(self.carrier.returncode, 0,
                         f"the carrier's scenario completed: {self.read('errors.log')[-3000:]}")
        self.assertEqual(len(invites(self.read("messages.log"))), 2,
                         "tapir answers one challenge, not two")


if __name__ == "__main__":
    unittest.main(verbosity=2)

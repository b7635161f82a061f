#!/usr/bin/env python3
"""SIP and RTP over IPv6: two baresip phones (Debian's `baresip-core`) register
to a real `tapir serve` that listens on `[::1]` only (SIP over UDP and TCP, the
HTTP API), call each other through it and hear each other's tone over RTP on
`::1`.

pjsua2's PyPI wheel is built without IPv6, hence baresip on both sides. Like
test_baresip.py this runs inside the private network namespace of
tests/interop/in-private-netns (scripts/test does), where `lo` carries `::1`;
baresip is started with `-6 -n ::1` so that it advertises `::1` in its Contact
and SDP (`-n lo` finds no IPv6 address in libre 1.1), and with `-s` so that
its log holds the SIP trace the tests read tapir's offer from. baresip 1.0's
`aufile` has no player, so what each phone hears is taken from the `sndfile`
filter's `dump-*-dec.wav`. libre 1.1 answers MD5
challenges only, hence `digest_algorithms = ["MD5"]`.
"""

import glob
import os
import socket
import sys
import tempfile
import time
import unittest

import test_baresip
import test_sip_calls as base

# The tone each phone plays (baresip's ausine source) and so the tone the
# other one must hear.
TONES = {"1001": 800, "1002": 600, "1003": 1000}


def free_port6(kind=socket.SOCK_DGRAM):
    """A port free on ::1 for both UDP and TCP (SIP listens on both)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET6, kind)
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        s.close()
        other = socket.socket(socket.AF_INET6,
                              socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM)
        try:
            other.bind(("::1", port))
            return port
        except OSError:
            continue
        finally:
            other.close()
    raise AssertionError("no port free on ::1 for both UDP and TCP")


class Tapir6(base.Tapir):
    """A `tapir serve` whose SIP (UDP, TCP) and HTTP listeners are on [::1]
    only."""

    http_host = "[::1]"

    def __init__(self):
        super().__init__(sip_extra=test_baresip.MD5_ONLY)

    def config(self, sip_extra, lines_extra):
        self.sip_port = free_port6()
        self.http_port = free_port6(socket.SOCK_STREAM)
        lines = "".join(
            f'[[lines]]\naddress = "{a}"\nkind = "phone"\npassword = "{p}"\n'
            f'name = "Phone {a}"\n\n'
            for a, p in base.PASSWORDS.items())
        return (
            f'data_dir = "{self.dir}/data"\n'
            f'[sip]\nlisten = ["udp:[::1]:{self.sip_port}", "tcp:[::1]:{self.sip_port}"]\n'
            'domain = "::1"\n'
            + sip_extra +
            f'[http]\nlisten = "[::1]:{self.http_port}"\nadmin_token = "interop-admin"\n\n'
            + lines + lines_extra +
            f'[[apps]]\nname = "crm"\ntoken = "{base.TOKEN}"\nlines = ["*"]\n'
            'privileges = ["owner", "monitor"]\n')


class Baresip6(test_baresip.Baresip):
    """A baresip phone on ::1 (SIP over UDP or TCP), playing its own tone and
    recording what it hears."""

    def __init__(self, user, sip_port, transport):
        self.user = user
        self.dir = tempfile.mkdtemp(prefix=f"baresip6-{user}-")
        self.ctrl_port = free_port6(socket.SOCK_STREAM)
        local = free_port6()
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write(
                "poll_method epoll\n"
                f"sip_listen [::1]:{local}\n"
                f"audio_source ausine,{TONES[user]}\n"
                "ausrc_srate 48000\n"
                "ausrc_channels 2\n"
                "auplay_srate 48000\n"
                "auplay_channels 1\n"
                f"snd_path {self.dir}\n"
                "module_path /usr/lib/baresip/modules\n"
                "module g711.so\n"
                "module ausine.so\n"
                "module sndfile.so\n"
                "module_app account.so\n"
                "module_app menu.so\n"
                "module_app ctrl_tcp.so\n"
                f"ctrl_tcp_listen [::1]:{self.ctrl_port}\n")
        params = ";transport=tcp" if transport == "tcp" else ""
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(f"<sip:{user}@[::1]:{sip_port}{params}>;auth_pass={base.PASSWORDS[user]};"
                    "regint=600;audio_codecs=PCMU\n")
        self.launch(["-6", "-s", "-n", "::1"], "::1")

    def heard(self):
        """The WAV of what this phone decoded from the call (baresip 1.0's
        aufile has no player; its sndfile filter writes `dump-*-dec.wav`)."""
        found = sorted(glob.glob(os.path.join(self.dir, "dump-*-dec.wav")))
        if not found:
            raise AssertionError(f"baresip {self.user} recorded nothing; see {self.dir}")
        return found[-1]


class Ipv6Calls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not test_baresip.in_private_netns():
            raise RuntimeError("run inside `unshare -n` with only lo and br0 (see scripts/test)")

    def setUp(self):
        self.tapir = Tapir6()
        for line in self.lines():
            self.tapir.http("POST", f"/v1/lines/{line['id']}/open",
                            {"privileges": ["owner", "monitor"]})
        self.peers = []

    def tearDown(self):
        for p in self.peers:
            p.close()
        self.tapir.close()

    def lines(self):
        lines = self.tapir.http("GET", "/v1/lines")
        return lines.get("lines", lines) if isinstance(lines, dict) else lines

    def registration(self, address):
        return next(l for l in self.lines() if l["address"] == address)["registration"]

    def phone(self, user, transport):
        b = Baresip6(user, self.tapir.sip_port, transport)
        self.peers.append(b)
        deadline = time.time() + 10
        while self.registration(user) != "registered":
            if time.time() > deadline:
                raise AssertionError(f"baresip {user} did not register over IPv6 {transport}; "
                                     f"log in {b.dir}, tapir's in {self.tapir.dir}")
            time.sleep(0.1)
        return b

    def call(self, transport):
        """1002 calls 1003 through tapir over IPv6; 1003 answers."""
        a = self.phone("1002", transport)
        b = self.phone("1003", transport)
        a.command("dial", f"sip:1003@[::1]:{self.tapir.sip_port}")
        b.wait_event("CALL_INCOMING")
        self.tapir.wait_states("1003", ["offering"])
        b.command("accept")
        b.wait_event("CALL_ESTABLISHED")
        a.wait_event("CALL_ESTABLISHED")
        self.tapir.wait_states("1002", ["connected"])
        self.tapir.wait_states("1003", ["connected"])
        return a, b

    def hang_up(self, a, b):
        a.command("hangup")
        b.wait_event("CALL_CLOSED")
        self.tapir.wait_states("1002", ["idle"])
        self.tapir.wait_states("1003", ["idle"])  # until the app deallocates it

    def test_phones_register_over_udp_and_tcp(self):
        self.assertEqual(self.registration("1002"), "unregistered")
        self.phone("1002", "udp")
        self.phone("1003", "tcp")
        self.assertEqual(self.registration("1001"), "unregistered")
        lines = {l["address"]: l for l in self.lines()}
        # The registrar keeps each phone's IPv6 contact and source address.
        (udp,), (tcp,) = lines["1002"]["contacts"], lines["1003"]["contacts"]
        self.assertEqual(udp["transport"], "udp")
        self.assertRegex(udp["uri"], r"^sip:1002-[^@]+@\[::1\]:\d+$")
        self.assertRegex(udp["source"], r"^\[::1\]:\d+$")
        self.assertEqual(tcp["transport"], "tcp")
        self.assertRegex(tcp["uri"], r"^sip:1003-[^@]+@\[::1\]:\d+;transport=tcp$")
        self.assertRegex(tcp["source"], r"^\[::1\]:\d+$")

    def trace(self, phone):
        """baresip's SIP trace (`-s`) and log."""
        with open(os.path.join(phone.dir, "baresip.log"), errors="replace") as f:
            return f.read()

    def assert_hear_each_other(self, a, b):
        """After a call of 3 s: tapir anchored the media on ::1 and each
        phone heard the other's tone, not its own."""
        # tapir's offer to the callee (baresip's SIP trace) anchors the media
        # on ::1, and the callee's RTP came from tapir's ::1 port.
        trace = self.trace(b)
        self.assertRegex(trace, r"o=tapir \d+ \d+ IN IP6 ::1", "tapir's SDP offer is IPv6")
        self.assertIn("c=IN IP6 ::1", trace)
        self.assertRegex(trace, r"receiving from \[::1\]:\d+")
        self.assert_hears(a, b)
        self.assert_hears(b, a)

    def assert_hears(self, phone, other):
        """The second half of what `phone` heard is `other`'s tone, well above
        its own (Goertzel power)."""
        levels = base.tone_levels(phone.heard(), sorted(TONES.values()))
        print(f"{phone.user} hears {levels}", file=sys.stderr)
        want, own = TONES[other.user], TONES[phone.user]
        self.assertGreater(levels[want], 10 * levels[own],
                           f"{phone.user} hears {other.user}'s {want} Hz: {levels}")

    def test_call_over_udp_and_both_hear_each_other(self):
        a, b = self.call("udp")
        time.sleep(3.0)
        self.hang_up(a, b)
        self.assertRegex(self.trace(b), r"INVITE sip:1003@\[::1\]:\d+ SIP/2.0\s+Via: SIP/2.0/UDP \[::1\]:")
        self.assert_hear_each_other(a, b)

    def test_call_over_tcp_and_both_hear_each_other(self):
        a, b = self.call("tcp")
        time.sleep(3.0)
        self.hang_up(a, b)
        self.assertRegex(self.trace(b), r"INVITE sip:1003@\[::1\]:\d+;transport=tcp SIP/2.0\s+"
                         r"Via: SIP/2.0/TCP \[::1\]:")
        self.assert_hear_each_other(a, b)

    def test_hold_and_resume_over_ipv6(self):
        """Re-INVITEs with IPv6 SDP: the callee holds (sendonly) and resumes."""
        a, b = self.call("udp")
        b.command("hold")
        self.tapir.wait_states("1003", ["onhold"])
        b.command("resume")
        self.tapir.wait_states("1003", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        self.hang_up(a, b)

    def test_blind_transfer_with_refer_to_an_ipv6_uri(self):
        """The callee REFERs the caller to sip:1001@[::1]:port; 1001 answers
        and talks with the caller."""
        c = self.phone("1001", "udp")
        a, b = self.call("udp")
        b.command("transfer", f"sip:1001@[::1]:{self.tapir.sip_port}")
        c.wait_event("CALL_INCOMING")
        c.command("accept")
        c.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_CLOSED")
        self.tapir.wait_states("1001", ["connected"])
        self.tapir.wait_states("1002", ["connected"])
        self.tapir.wait_states("1003", ["idle"])  # until the app deallocates it
        # A call of 3 s more after the transfer of 1.5 s or so: the second
        # half of what the caller heard is 1001's tone.
        time.sleep(3.0)
        a.command("hangup")
        c.wait_event("CALL_CLOSED")
        self.assert_hears(a, c)
        self.assert_hears(c, a)


if __name__ == "__main__":
    unittest.main(verbosity=2)

#!/usr/bin/env python3
"""The cluster suite (issue 13, ADR 0002): three tapir nodes on loopback
behind a real Kamailio edge, sharing line leases in a real PostgreSQL, with
nats-server running beside them, all started by `scripts/cluster up` and
stopped by `scripts/cluster down`.

Checked here:
- cluster.json has the shape shared/API.md fixes, and its pids run;
- every line of the configuration is served by exactly one node;
- pjsua2 phones (a client this team did not write) register through the
  edge only, each reaching the node that serves its line (Path through the
  edge); two phones on one node call each other through the edge;
- PostgreSQL restarted (3 s down): every node keeps its lines and serves;
- a node killed with SIGKILL: its lines are served by the others within
  15 s (the time is printed), and its phones are reached at once from their
  new node (bindings restored from the shared store), without registering
  again;
- the killed node restarted: it takes back its idle lines at once, and a
  line with a call in progress only once the call has ended (the call is
  not dropped);
- `down` stops every pid `up` started.

Run by scripts/test (TAPIR_KEEP_CLUSTER=1 keeps the logs). Every wait is
bounded.
"""

import importlib.machinery
import importlib.util
import json
import queue
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "interop"))
import test_sip_calls  # noqa: E402  (the interop suite's pjsua2 Phone)

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TAPIR = os.environ.get("TAPIR_BIN", os.path.join(TARGET, "debug", "tapir"))
CONFIG = os.path.join(HERE, "cluster.toml")
TOKEN = "cluster-app-token"
ADMIN = "cluster-admin-secret"
LINES = ["1001", "1002", "1003", "1004", "1005", "1006"]
PASSWORDS = {a: f"pw-{a}-secret" for a in LINES}
test_sip_calls.PASSWORDS.update(PASSWORDS)


def get(url, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def post(url, body, token):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def put(url, body, token):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PUT")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def load_cluster_script():
    """scripts/cluster as a module: its rendezvous hash is the one the
    tests compare with (one copy of tapir-cluster's rule in Python)."""
    path = os.path.join(ROOT, "scripts", "cluster")
    loader = importlib.machinery.SourceFileLoader("cluster_script", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("cluster_script",
                                                                             loader))
    loader.exec_module(module)
    return module


CLUSTER = load_cluster_script()


def register(phone):
    """The phone registers through the edge: 200."""
    phone.send(cmd="register")
    phone.wait_for(lambda e: e.get("event") == "reg" and e.get("code") == 200, 15)


def talk(caller, callee, to):
    """`caller` calls `to`, `callee` answers: both confirmed. Events of
    earlier calls (a ring that was redirected away, say) are forgotten
    first, so that they are not taken for this call's."""
    forget(caller, callee)
    caller.send(cmd="call", to=to)
    callee.wait_for(lambda e: e.get("event") == "incoming", 15)
    callee.send(cmd="answer")
    for p in (caller, callee):
        p.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "CONFIRMED", 15)


def hang_up(caller, callee):
    """`caller` hangs up: both see the call end."""
    caller.send(cmd="hangup")
    for p in (caller, callee):
        p.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "DISCONNECTED", 15)


def edge_phone(user, edge):
    """A pjsua2 phone whose only server (registrar and proxy) is the edge."""
    host, port = edge.rsplit(":", 1)
    assert host == "127.0.0.1"
    return test_sip_calls.Phone(user, int(port))


class Cluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tapir-cluster-")
        env = dict(os.environ, TAPIR_BIN=TAPIR)
        subprocess.run([os.path.join(ROOT, "scripts", "cluster"), "up", "--nodes", "3",
                        "--config", CONFIG, "--dir", cls.dir], check=True, env=env,
                       timeout=300)
        with open(os.path.join(cls.dir, "cluster.json")) as f:
            cls.info = json.load(f)
        cls.phones = []

    @classmethod
    def tearDownClass(cls):
        for p in cls.phones:
            p.close()
        pids = [n["pid"] for n in cls.info["nodes"]] + [
            cls.info[k] for k in ("postgres_pid", "nats_pid", "kamailio_pid")]
        subprocess.run([os.path.join(ROOT, "scripts", "cluster"), "down", "--dir", cls.dir],
                       check=True, timeout=120)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.1)
        left = [p for p in pids if alive(p)]
        assert not left, f"down left these pids running: {left}"
        if os.environ.get("TAPIR_KEEP_CLUSTER"):
            print(f"cluster logs kept in {cls.dir}", file=sys.stderr)
        else:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def served(self):
        """{node name: lines it serves}, for the nodes still answering."""
        out = {}
        for n in self.info["nodes"]:
            try:
                out[n["name"]] = set(get(f"{n['http']}/healthz")["cluster"]["lines"])
            except OSError:
                pass
        return out

    def psql(self, sql):
        """What `sql` prints on the cluster's PostgreSQL ('' when it fails)."""
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        out = subprocess.run(run_as + ["psql", self.info["postgres"], "-Atc", sql],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def saved_registrations(self):
        """Addresses whose bindings the shared store holds."""
        return set(self.psql("SELECT address FROM cluster_registrations").split())

    def node(self, name):
        return next(n for n in self.info["nodes"] if n["name"] == name)

    def phone(self, user):
        """The suite's phone for `user`, registered through the edge (one
        per user: a second registration of the same line would fork)."""
        for p in self.phones:
            if p.user == user:
                return p
        p = edge_phone(user, self.info["sip"])
        self.phones.append(p)
        register(p)
        return p

    def cdr(self, name, address, done, within=15):
        """The newest CDR node `name` has for `address` once `done` holds."""
        url = f"{self.node(name)['http']}/v1/admin/cdr?address={address}"
        deadline = time.monotonic() + within
        cdrs = []
        while time.monotonic() < deadline:
            cdrs = get(url, ADMIN)["cdrs"]
            if cdrs and done(cdrs[0]):
                return cdrs[0]
            time.sleep(0.2)
        self.fail(f"no finished CDR for {address} on {name}: {cdrs}")

    def calls_on(self, name):
        """(address, state) of every call the node `name` reports that is
        not idle (an idle call stays listed until its apps deallocate it)."""
        calls = get(f"{self.node(name)['http']}/v1/calls", TOKEN)
        calls = calls["calls"] if isinstance(calls, dict) else calls
        return sorted((c["address"], c["state"]) for c in calls if c["state"] != "idle")

    def test_1_cluster_json_and_every_line_on_one_node(self):
        info = self.info
        self.assertRegex(info["sip"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(len(info["nodes"]), 3)
        self.assertEqual(info["http"], [n["http"] for n in info["nodes"]])
        for n in info["nodes"]:
            self.assertEqual(set(n), {"name", "pid", "http", "sip"})
            self.assertTrue(alive(n["pid"]), n)
        for k in ("postgres_pid", "nats_pid", "kamailio_pid"):
            self.assertTrue(alive(info[k]), k)
        served = self.served()
        everything = sorted(line for lines in served.values() for line in lines)
        self.assertEqual(everything, LINES, f"each line once: {served}")

    def test_2_phones_register_and_call_through_the_edge(self):
        served = self.served()
        name, lines = max(served.items(), key=lambda kv: len(kv[1]))
        self.assertGreaterEqual(len(lines), 2, f"no node serves two lines: {served}")
        a, b = sorted(lines)[:2]
        pa = edge_phone(a, self.info["sip"])
        pb = edge_phone(b, self.info["sip"])
        self.phones += [pa, pb]
        type(self).home, type(self).registered = name, {a: pa, b: pb}
        for p in (pa, pb):
            register(p)
        # Registered on the serving node only, from the edge (Path).
        edge_host = self.info["sip"].split(":")[0]
        for n in self.info["nodes"]:
            view = {l["address"]: l for l in get(f"{n['http']}/v1/lines", TOKEN)}
            for user in (a, b):
                if n["name"] == name:
                    self.assertEqual(view[user]["registration"], "registered", (n, user))
                    self.assertTrue(view[user]["contacts"][0]["source"].startswith(edge_host))
                else:
                    self.assertEqual(view[user]["registration"], "unregistered", (n, user))
        # The app watches both lines on their node (lineOpen, monitor).
        home = self.node(name)["http"]
        for l in get(f"{home}/v1/lines", TOKEN):
            if l["address"] in (a, b):
                self.assertEqual(
                    post(f"{home}/v1/lines/{l['id']}/open", {"privileges": ["monitor"]}, TOKEN),
                    200)
        talk(pa, pb, b)
        calls = get(f"{self.node(name)['http']}/v1/calls", TOKEN)
        calls = calls["calls"] if isinstance(calls, dict) else calls
        states = sorted((c["address"], c["state"]) for c in calls)
        self.assertIn((a, "connected"), states)
        self.assertIn((b, "connected"), states)
        hang_up(pa, pb)
        with open(os.path.join(self.dir, "kamailio.log"), errors="replace") as f:
            relayed = f.read()
        self.assertIn("relay INVITE", relayed)
        self.assertIn(f"-> sip:{self.node(name)['sip']}", relayed)

    def test_2b_phones_on_different_nodes_call_each_other(self):
        # A call between lines that two nodes serve crosses between them
        # as SIP through the edge, marked by the calling node; each node
        # anchors its own half.
        served = self.served()
        a, b = sorted(self.registered)
        other, lines = next((n, sorted(ls)) for n, ls in sorted(served.items())
                            if n != self.home and ls)
        c = lines[0]
        pa, pb, pc = self.registered[a], self.registered[b], self.phone(c)
        for n in (self.home, other):
            home = self.node(n)["http"]
            for l in get(f"{home}/v1/lines", TOKEN):
                if l["address"] in (a, b, c):
                    post(f"{home}/v1/lines/{l['id']}/open", {"privileges": ["monitor"]}, TOKEN)
        type(self).other, type(self).other_line = other, c
        talk(pa, pc, c)
        self.assertIn((a, "connected"), self.calls_on(self.home))
        self.assertIn((c, "connected"), self.calls_on(other))
        time.sleep(2)  # audio both ways, relayed by both nodes
        hang_up(pa, pc)
        # Each node's record has both of its legs' RTP: the phone's and
        # the other node's.
        for name, user in ((self.home, a), (other, c)):
            cdr = self.cdr(name, user, lambda r: len(r.get("quality", [])) == 2 and {
                p["address"] for p in r["parties"]} == {a, c})
            for q in cdr["quality"]:
                self.assertGreater(q["packets_received"], 20, (name, cdr))
        # And back, the callee hanging up.
        talk(pc, pb, b)
        self.assertIn((c, "connected"), self.calls_on(other))
        self.assertIn((b, "connected"), self.calls_on(self.home))
        hang_up(pb, pc)
        # Both halves are gone on both nodes.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self.calls_on(self.home) or self.calls_on(other)):
            time.sleep(0.2)
        self.assertEqual(self.calls_on(self.home), [])
        self.assertEqual(self.calls_on(other), [])
        with open(os.path.join(self.dir, "kamailio.log"), errors="replace") as f:
            relayed = f.read()
        from_home = f"relay INVITE {self.node(self.home)['sip']} -> sip:{self.node(other)['sip']}"
        self.assertIn(from_home, relayed)

    def call_at(self, name, address, state):
        """The id of the call at `address` in `state` on node `name` (waits)."""
        url = f"{self.node(name)['http']}/v1/calls"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            calls = get(url, TOKEN)
            calls = calls["calls"] if isinstance(calls, dict) else calls
            for c in calls:
                if c["address"] == address and c["state"] == state:
                    return c["id"]
            time.sleep(0.1)
        self.fail(f"no {state} call at {address} on {name}: {calls}")

    def test_2d_operations_send_calls_to_lines_on_another_node(self):
        # An app on the node serving a and b redirects, blind-transfers and
        # forwards their calls to c, served by another node: each reaches
        # c's phone through the edge and the parties talk across the nodes.
        a, b = sorted(self.registered)
        pa, pb = self.registered[a], self.registered[b]
        c, other = self.other_line, self.other
        pc = self.phone(c)
        home = self.node(self.home)["http"]
        for l in get(f"{home}/v1/lines", TOKEN):
            if l["address"] in (a, b):
                post(f"{home}/v1/lines/{l['id']}/open", {"privileges": ["owner"]}, TOKEN)
        answered = lambda e: e.get("event") == "call" and e.get("state") == "CONFIRMED"
        incoming = lambda e: e.get("event") == "incoming"
        # lineRedirect of a's offering call to c.
        forget(pa, pb, pc)
        pb.send(cmd="call", to=a)
        offering = self.call_at(self.home, a, "offering")
        self.assertEqual(post(f"{home}/v1/calls/{offering}/redirect", {"to": c}, TOKEN), 200)
        pc.wait_for(incoming, 15)
        pc.send(cmd="answer")
        for p in (pb, pc):
            p.wait_for(answered, 15)
        self.assertIn((c, "connected"), self.calls_on(other))
        hang_up(pb, pc)
        # lineBlindTransfer of b's connected call (with a) to c.
        talk(pa, pb, b)
        at_b = self.call_at(self.home, b, "connected")
        forget(pc)
        self.assertEqual(post(f"{home}/v1/calls/{at_b}/blind-transfer", {"to": c}, TOKEN), 200)
        pc.wait_for(incoming, 15)
        pc.send(cmd="answer")
        pc.wait_for(answered, 15)
        pb.wait_for(lambda e: e.get("event") == "call" and e.get("state") == "DISCONNECTED", 15)
        self.call_at(self.home, a, "connected")
        self.assertIn((c, "connected"), self.calls_on(other))
        hang_up(pa, pc)
        # lineForward of b, unconditionally, to c.
        url = f"{home}/v1/addresses/{b}/forwarding"
        self.assertIn(put(url, {"rules": [{"mode": "unconditional", "to": c}]}, TOKEN),
                      (200, 204))
        talk(pa, pc, b)
        self.assertIn((c, "connected"), self.calls_on(other))
        hang_up(pa, pc)
        self.assertIn(put(url, {"rules": []}, TOKEN), (200, 204))

    def test_2c_a_stranger_cannot_pass_for_a_node(self):
        # A forged X-Tapir-Node from outside is removed by the edge, so the
        # request is a device's and is challenged; sent straight to a node
        # (not from the edge) the mark is not looked at either.
        served = self.served()
        other, lines = next((n, sorted(ls)) for n, ls in sorted(served.items()) if ls)
        c = lines[0]
        forged = "node=node-1;ts=%d;from=%s;hops=0;mac=%s" % (time.time(), c, "0" * 64)
        for target in (self.info["sip"], self.node(other)["sip"]):
            code = raw_invite(target, c, forged)
            self.assertEqual(code, 407, f"a forged mark via {target} must be challenged")

    def test_3_a_postgres_restart_costs_nothing(self):
        # PostgreSQL is down for 3 s (less than the 8 s lease fence): the
        # nodes retry, keep their lines, and nothing moves.
        before = self.served()
        subprocess.run([os.path.join(ROOT, "scripts", "cluster"), "restart", "--dir", self.dir,
                        "--engine", "postgres", "--down-secs", "3"], check=True, timeout=120)
        with open(os.path.join(self.dir, "cluster.json")) as f:
            type(self).info = json.load(f)
        self.assertTrue(alive(self.info["postgres_pid"]))
        # The nodes renew again by themselves: every lease gets more than
        # 8 of its 10 s back (renewed within the last 2 s).
        deadline = time.monotonic() + 15
        least = None
        while time.monotonic() < deadline:
            least = self.psql("SELECT EXTRACT(EPOCH FROM min(lease_until - now())) "
                              "FROM cluster_leases")
            if least and float(least) > 8.0:
                break
            time.sleep(0.2)
        self.assertGreater(float(least), 8.0, "leases not renewed after the restart")
        self.assertEqual(self.served(), before)
        for n in self.info["nodes"]:
            self.assertTrue(get(f"{n['http']}/healthz")["cluster"]["serving"], n)
        # The registrations saved before are still there.
        self.assertLessEqual(set(self.registered), self.saved_registrations())

    def test_4_a_killed_nodes_lines_and_phones_are_served_again_within_15_s(self):
        # The node whose phones registered in test 2 dies, once it has saved
        # their bindings in the shared store (each round, every 2 s).
        victim = self.home
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if set(self.registered) <= self.saved_registrations():
                break
            time.sleep(0.2)
        self.assertLessEqual(set(self.registered), self.saved_registrations())
        orphaned = self.served()[victim]
        # A call between a survivor's phone and the victim's is in progress.
        survivor_phone = self.phone(self.other_line)
        doomed = self.registered[sorted(self.registered)[1]]
        talk(survivor_phone, doomed, doomed.user)
        pid = self.node(victim)["pid"]
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        taken = None
        while time.monotonic() - killed < 30:
            now = {k: v for k, v in self.served().items() if k != victim}
            if orphaned <= set().union(*now.values()):
                taken = time.monotonic() - killed
                break
            time.sleep(0.2)
        self.assertIsNotNone(taken, f"{victim}'s lines {orphaned} not taken over in 30 s")
        print(f"\n  takeover: {victim}'s {len(orphaned)} lines served again after {taken:.1f} s",
              file=sys.stderr)
        self.assertLessEqual(taken, 15.0)
        # The survivor's half of that call ended when the victim's
        # heartbeat expired, and its record says why.
        survivor_phone.wait_for(
            lambda e: e.get("event") == "call" and e.get("state") == "DISCONNECTED", 15)
        ended = time.monotonic() - killed
        print(f"  the survivor's half of a call with it ended after {ended:.1f} s",
              file=sys.stderr)
        cdr = self.cdr(self.other, self.other_line, lambda r: r.get("end_reason") == "node_lost")
        self.assertEqual(cdr["end_reason"], "node_lost")
        # The victim's own record of that call (it anchored the other half)
        # is closed by the node that took the victim's line over.
        doomed_line = doomed.user
        keeper = next(n for n, lines in self.served().items() if doomed_line in lines)
        cdr = self.cdr(keeper, doomed_line, lambda r: r.get("end_reason") == "node_lost")
        self.assertEqual({p["address"] for p in cdr["parties"]}, {doomed_line, self.other_line})
        self.assertIsNotNone(cdr["answered_at"])
        now = self.served()
        everything = sorted(line for n, lines in now.items() if n != victim for line in lines)
        self.assertEqual(everything, LINES)
        # A phone of the dead node is reached at once, without registering
        # again: its new node restored its binding from the shared store.
        # A phone on that new node calls it through the edge.
        target = sorted(self.registered)[0]
        new_node = next(n for n, lines in now.items() if target in lines and n != victim)
        view = {l["address"]: l for l in get(f"{self.node(new_node)['http']}/v1/lines", TOKEN)}
        self.assertEqual(view[target]["registration"], "registered", "binding restored")
        caller = sorted(l for l in now[new_node] if l != target and l not in self.registered)[0]
        pc = self.phone(caller)
        pt = self.registered[target]
        talk(pc, pt, target)
        hang_up(pc, pt)


    def test_5_a_returning_node_takes_its_idle_lines_back_and_no_call_is_dropped(self):
        victim = self.home
        names = [n["name"] for n in self.info["nodes"]]
        now = self.served()
        target = sorted(self.registered)[0]
        keeper = next(n for n, lines in now.items() if target in lines and n != victim)
        caller = sorted(l for l in now[keeper] if l != target and l not in self.registered)[0]
        pc = next(p for p in self.phones if p.user == caller)
        pt = self.registered[target]
        # A call in progress on a line the returning node should serve.
        talk(pc, pt, target)
        subprocess.run([os.path.join(ROOT, "scripts", "cluster"), "restart", "--dir", self.dir,
                        "--engine", "node", "--node", victim, "--down-secs", "0"], check=True,
                       timeout=120)
        with open(os.path.join(self.dir, "cluster.json")) as f:
            type(self).info = json.load(f)
        # Its idle lines come back to it; the line with the call stays.
        wanted = {l for l in LINES if CLUSTER.preferred_node(l, names) == victim}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            served = self.served()
            if served.get(victim) == wanted - {target} and target in served.get(keeper, set()):
                break
            time.sleep(0.2)
        self.assertEqual(served.get(victim), wanted - {target}, served)
        self.assertIn(target, served[keeper], "a line with a call in progress never moves")
        # Still talking: no phone saw its call end.
        for p in (pc, pt):
            seen = drained(p)
            self.assertFalse(any(e.get("state") == "DISCONNECTED" for e in seen), (p.user, seen))
        hang_up(pc, pt)
        # Idle now, the line goes home too.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.served().get(victim) != wanted:
            time.sleep(0.2)
        self.assertEqual(self.served().get(victim), wanted)


def raw_invite(target, user, mark):
    """Send an INVITE from `user` to `user` with an X-Tapir-Node `mark` to
    `target` (host:port) over UDP; the final (or 407) response code."""
    import socket
    import secrets
    host, port = target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    me = s.getsockname()[1]
    branch, call_id = secrets.token_hex(8), secrets.token_hex(12)
    msg = (f"INVITE sip:{user}@{host}:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{branch};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:{user}@tapir.test>;tag=f{branch}\r\n"
           f"To: <sip:{user}@tapir.test>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
           f"Contact: <sip:{user}@127.0.0.1:{me}>\r\nX-Tapir-Node: {mark}\r\n"
           f"Content-Length: 0\r\n\r\n")
    try:
        s.sendto(msg.encode(), (host, int(port)))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data, _ = s.recvfrom(65535)
            code = int(data.split(b" ", 2)[1])
            if code >= 200:
                return code
        return None
    finally:
        s.close()


def forget(*phones):
    """Drop every event the phones reported so far."""
    for p in phones:
        drained(p)
        p.events.clear()


def drained(phone):
    """Every event the phone has reported so far, without waiting."""
    while True:
        try:
            phone.events.append(phone.queue.get_nowait())
        except queue.Empty:
            return phone.events


if __name__ == "__main__":
    unittest.main(verbosity=2)

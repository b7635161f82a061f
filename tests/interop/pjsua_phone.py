#!/usr/bin/env python3
"""A scripted SIP phone built on PJSIP's pjsua2 (a client this team did not write).

The interop tests start one of these per phone and drive it line by line:
commands arrive as JSON objects on stdin, events leave as JSON objects on
stdout. No sound card is used (null audio device); a phone can play a tone
into its call and measure what it hears with a Goertzel filter.

Commands:  {"cmd": "register"} | {"cmd": "call", "to": "1002"} | {"cmd": "answer"}
           {"cmd": "call", "to": "1002", "headers": {"Replaces": "..."}}  (extra INVITE headers)
           {"cmd": "reject", "code": 404?} (the final answer, 486 by default) | {"cmd": "hangup"}
           {"cmd": "hold"} | {"cmd": "unhold"}
           {"cmd": "xfer", "to": "1003"} | {"cmd": "dtmf", "digits": "12#"} | {"cmd": "quit"}
           {"cmd": "dtmf_info", "digits": "5"}   (DTMF as SIP INFO, application/dtmf-relay)
           {"cmd": "tone", "hz": 1100, "on_ms": 500, "off_ms": 3000}
                                                 (a tone into the call with a cadence, looping:
                                                  a fax's calling tone)
           {"cmd": "play", "hz": 700}            (a tone into every call, also calls set up later)
           {"cmd": "listen", "path": "x.wav"}    (record what every call of the phone hears)
           {"cmd": "rtcp"}   -> {"event": "rtcp", "rtt_n": ..., "tx_updates": ..., "tx_loss": ...}
                                (what the far end's RTCP told the phone's audio stream)
           {"cmd": "media_info"} -> {"event": "media_info", "proto": "RTP/SAVP", "srtp": true,
                                     "local_sdp": "...", "remote_sdp": "..."}
                                (the audio stream's transport, whether pjmedia's SRTP is
                                 active on it, and the last SDP the phone wrote and read
                                 when it built its own: its offer, or tapir's offer it answered)
           {"cmd": "report_dtmf"} -> {"event": "reporting_dtmf"}, then {"event": "dtmf", "digit": "5"}
                                (for each RFC 4733 digit the phone receives from now on)
Options:   --port N                   a fixed local SIP port; a phone that is never told to
                                      "register" there plays a trunk's carrier (tapir sends
                                      it calls for external numbers, it calls tapir's DIDs)
           --srtp mandatory|optional  SRTP with SDES keys (pjsua2 srtpUse), only over a
                                      secure (TLS) signalling hop; without it: no SRTP
Events:    {"event": "ready"} | {"event": "reg", "code": 200}
           {"event": "incoming", "from": "...", "uri": "sip:..."}  (uri: the INVITE's Request-URI)
           {"event": "call", "state": "CONFIRMED", "code": 200}
           {"event": "media", "status": "active"|"local_hold"|"remote_hold"|"none"}
           {"event": "redirected", "target": "<sip:...>"}  (a 3xx to the phone's own call:
                                it follows it, as desk phones do)
           {"event": "error", "message": "..."}
"""

import argparse
import gc
import json
import os
import select
import sys
import time

import pjsua2 as pj


def write_tone(path, hz, seconds, rate=16000, off_seconds=0.0):
    """A 16-bit mono WAV with a pure tone at half scale (then, with
    off_seconds, that much silence: a cadence when the player loops it)."""
    import math
    import struct
    import wave
    frames = b"".join(
        struct.pack("<h", int(16000 * math.sin(2 * math.pi * hz * n / rate)))
        for n in range(int(seconds * rate)))
    frames += b"\x00\x00" * int(off_seconds * rate)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def start_recording(call, path):
    """A recorder of what the phone hears (its only reference is returned:
    dropping it writes the WAV header)."""
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(path)
    call.getAudioMedia(-1).startTransmit(recorder)
    return recorder


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


PROTOCOLS = {
    pj.PJMEDIA_TP_PROTO_RTP_AVP: "RTP/AVP",
    pj.PJMEDIA_TP_PROTO_RTP_SAVP: "RTP/SAVP",
    pj.PJMEDIA_TP_PROTO_RTP_AVPF: "RTP/AVPF",
    pj.PJMEDIA_TP_PROTO_RTP_SAVPF: "RTP/SAVPF",
}


class Call(pj.Call):
    def __init__(self, account, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(account, call_id)
        self.account = account
        self.local_sdp = ""
        self.remote_sdp = ""

    def onCallSdpCreated(self, prm):
        self.local_sdp = prm.sdp.wholeSdp
        self.remote_sdp = prm.remSdp.wholeSdp

    def onCallState(self, prm):
        info = self.getInfo()
        emit(event="call", state=info.stateText, code=int(info.lastStatusCode))

    def onCallRedirected(self, prm):
        # Like a desk phone: follow a 3xx to its Contact, which becomes the
        # call's new target (the phone's screen shows it).
        emit(event="redirected", target=prm.targetUri)
        return pj.PJSIP_REDIRECT_ACCEPT_REPLACE

    def onDtmfDigit(self, prm):
        if self.account.report_dtmf:
            emit(event="dtmf", digit=prm.digit)

    def onCallMediaState(self, prm):
        info = self.getInfo()
        status = "none"
        for m in info.media:
            if m.type == pj.PJMEDIA_TYPE_AUDIO:
                status = {
                    pj.PJSUA_CALL_MEDIA_ACTIVE: "active",
                    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "local_hold",
                    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "remote_hold",
                }.get(m.status, "none")
        if status == "active":
            # "play" and "listen" follow the phone into every call it has.
            for port in self.account.players:
                port.startTransmit(self.getAudioMedia(-1))
            for port in self.account.listeners:
                self.getAudioMedia(-1).startTransmit(port)
        emit(event="media", status=status)


class Account(pj.Account):
    def __init__(self):
        super().__init__()
        self.calls = []
        self.players = []  # "play": sources sent into every active call
        self.listeners = []  # "listen": recorders of every active call
        self.report_dtmf = False  # "report_dtmf": emit the digits received

    def onRegState(self, prm):
        emit(event="reg", code=int(prm.code))

    def onIncomingCall(self, prm):
        call = Call(self, prm.callId)
        self.calls.append(call)
        whole = prm.rdata.wholeMsg
        auto = "answer-after=0" in whole
        request_line = whole.split("\r\n", 1)[0].split(" ")
        uri = request_line[1] if len(request_line) > 2 else ""
        emit(event="incoming", auto=auto, uri=uri, **{"from": call.getInfo().remoteUri})
        reply = pj.CallOpParam()
        # Phones honour tapir's auto-answer hint (third-party call control).
        reply.statusCode = 200 if auto else 180
        call.answer(reply)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--server", required=True, help="host:port of tapir's SIP listener")
    ap.add_argument("--port", type=int, default=0, help="local SIP port (0: any)")
    ap.add_argument("--run-seconds", type=float, default=120.0, help="exit after this long")
    ap.add_argument("--workdir", default="/tmp", help="where tone files are written")
    ap.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp", help="SIP transport")
    ap.add_argument("--srtp", choices=["mandatory", "optional"], default=None,
                    help="use SRTP (SDES keys, over a TLS hop only); default: plain RTP")
    ap.add_argument("--proxy", default=None,
                    help="host:port of an outbound proxy (loose router) every request goes through")
    args = ap.parse_args()

    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    level = int(os.environ.get("PJSUA_LOG_LEVEL", "1"))
    cfg.logConfig.level = level
    cfg.logConfig.consoleLevel = 1
    if os.environ.get("PJSUA_LOG_DIR"):
        cfg.logConfig.filename = os.path.join(os.environ["PJSUA_LOG_DIR"], f"pjsua-{args.user}.log")
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = args.port
    tcfg.boundAddress = "127.0.0.1"
    kinds = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
             "tls": pj.PJSIP_TRANSPORT_TLS}
    # tapir's TLS certificate is self-signed: the test phone does not verify it.
    tcfg.tlsConfig.verifyServer = False
    ep.transportCreate(kinds[args.transport], tcfg)
    suffix = "" if args.transport == "udp" else f";transport={args.transport}"
    ep.libStart()
    ep.audDevManager().setNullDev()

    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:{args.user}@{args.server}"
    acfg.regConfig.registrarUri = f"sip:{args.server}{suffix}"
    acfg.regConfig.registerOnAdd = False
    # RTP on loopback only, like everything else in the tests.
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
    if args.proxy:
        acfg.sipConfig.proxies.append(f"sip:{args.proxy};lr")
    acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", args.user, 0, args.password))
    if args.srtp:
        acfg.mediaConfig.srtpUse = {"mandatory": pj.PJMEDIA_SRTP_MANDATORY,
                                    "optional": pj.PJMEDIA_SRTP_OPTIONAL}[args.srtp]
        # 1: SDES keys only travel over a secure (TLS) hop.
        acfg.mediaConfig.srtpSecureSignaling = 1
    acc = Account()
    acc.create(acfg)
    emit(event="ready")

    keep = []  # players and recorders must outlive the command that made them
    deadline = time.time() + args.run_seconds
    while time.time() < deadline:
        ep.libHandleEvents(20)
        ready, _, _ = select.select([sys.stdin], [], [], 0)
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line:
            break
        try:
            cmd = json.loads(line)
            name = cmd.get("cmd")
            call = acc.calls[-1] if acc.calls else None
            if name == "register":
                acc.setRegistration(True)
            elif name == "unregister":
                acc.setRegistration(False)
            elif name == "call":
                c = Call(acc)
                acc.calls.append(c)
                prm = pj.CallOpParam(True)
                # Extra headers of the INVITE, e.g. a BLF key's Replaces.
                for hname, hvalue in cmd.get("headers", {}).items():
                    header = pj.SipHeader()
                    header.hName = hname
                    header.hValue = hvalue
                    prm.txOption.headers.append(header)
                c.makeCall(f"sip:{cmd['to']}@{args.server}{suffix}", prm)
            elif name == "answer" and call:
                prm = pj.CallOpParam()
                prm.statusCode = 200
                call.answer(prm)
            elif name == "reject" and call:
                prm = pj.CallOpParam()
                prm.statusCode = int(cmd.get("code", 486))
                call.hangup(prm)
            elif name == "hangup" and call:
                call.hangup(pj.CallOpParam())
            elif name == "hold" and call:
                call.setHold(pj.CallOpParam())
            elif name == "unhold" and call:
                # True: start from the default call settings (one audio
                # stream); without it pjsua re-offers audio with port 0.
                prm = pj.CallOpParam(True)
                prm.opt.flag = pj.PJSUA_CALL_UNHOLD
                call.reinvite(prm)
            elif name == "xfer" and call:
                call.xfer(f"sip:{cmd['to']}@{args.server}", pj.CallOpParam())
            elif name == "dtmf" and call:
                call.dialDtmf(cmd["digits"])
            elif name == "tone" and call:
                # Play a pure tone into the call, looping (a WAV we write).
                on_ms, off_ms = int(cmd.get("on_ms", 2000)), int(cmd.get("off_ms", 0))
                path = os.path.join(args.workdir,
                                    f"tone-{args.user}-{cmd['hz']}-{on_ms}-{off_ms}.wav")
                write_tone(path, float(cmd["hz"]), on_ms / 1000.0, off_seconds=off_ms / 1000.0)
                player = pj.AudioMediaPlayer()
                player.createPlayer(path, 0)
                player.startTransmit(call.getAudioMedia(-1))
                keep.append(player)
            elif name == "record" and call:
                keep.append(start_recording(call, cmd["path"]))
                emit(event="recording", path=cmd["path"])
            elif name == "stop_record":
                # Destroying the recorder writes the WAV header.
                for item in keep:
                    if isinstance(item, pj.AudioMediaRecorder) and call:
                        call.getAudioMedia(-1).stopTransmit(item)
                item = None
                keep.clear()
                gc.collect()
                emit(event="stopped")
            elif name == "dtmf_info" and call:
                prm = pj.CallSendDtmfParam()
                prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
                prm.digits = cmd["digits"]
                prm.duration = 160
                call.sendDtmf(prm)
            elif name == "play":
                path = os.path.join(args.workdir, f"play-{args.user}-{cmd['hz']}.wav")
                write_tone(path, float(cmd["hz"]), 2.0)
                player = pj.AudioMediaPlayer()
                player.createPlayer(path, 0)
                acc.players.append(player)
                for c in acc.calls:
                    if c.isActive() and c.hasMedia():
                        player.startTransmit(c.getAudioMedia(-1))
                emit(event="playing", hz=cmd["hz"])
            elif name == "listen":
                recorder = pj.AudioMediaRecorder()
                recorder.createRecorder(cmd["path"])
                acc.listeners.append(recorder)
                for c in acc.calls:
                    if c.isActive() and c.hasMedia():
                        c.getAudioMedia(-1).startTransmit(recorder)
                recorder = None  # the list holds the only reference
                emit(event="recording", path=cmd["path"])
            elif name == "stop_listen":
                # Destroying the recorders writes their WAV headers.
                acc.listeners.clear()
                gc.collect()
                emit(event="stopped")
            elif name == "rtcp" and call:
                # (pjsua2 2.15's peerSdes conversion aborts the process with
                # std::bad_alloc once SDES has arrived: it is not read.)
                rtcp = call.getStreamStat(0).rtcp
                emit(event="rtcp", rtt_n=int(rtcp.rttUsec.n),
                     rtt_mean_us=int(rtcp.rttUsec.mean), tx_updates=int(rtcp.txStat.updateCount),
                     tx_loss=int(rtcp.txStat.loss), rx_pkt=int(rtcp.rxStat.pkt))
            elif name == "media_info" and call:
                proto = PROTOCOLS.get(call.getStreamInfo(0).proto, "other")
                dump = call.dump(True, "")
                emit(event="media_info", proto=proto, srtp="SRTP status: Active" in dump,
                     local_sdp=call.local_sdp, remote_sdp=call.remote_sdp)
            elif name == "report_dtmf":
                acc.report_dtmf = True
                emit(event="reporting_dtmf")
            elif name == "quit":
                break
            else:
                emit(event="error", message=f"cannot {name} now")
        except Exception as e:  # report and keep serving the test
            emit(event="error", message=str(e))
    ep.libDestroy()


if __name__ == "__main__":
    main()

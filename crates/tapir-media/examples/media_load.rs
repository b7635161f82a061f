//! Load generator for the media engine over loopback: real-time G.711
//! streams (50 packets/s per direction) through relayed calls or mixed
//! conferences, reporting packets handled, loss, and the CPU time of the
//! engine's single worker thread (from /proc, Linux only).
//!
//! ```text
//! cargo run --release -p tapir-media --example media_load -- relay 200 5
//! cargo run --release -p tapir-media --example media_load -- mix 30 5
//! cargo run --release -p tapir-media --example media_load -- tone 1000 5
//! cargo run --release -p tapir-media --example media_load -- tap 500 5
//! ```
//! Arguments: mode (`relay` = calls of two legs, `mix` = conferences of
//! three, `tone` = single legs hearing hold music, `srtp` = calls between
//! an SRTP phone and a plain one, `tap` = relayed calls each with an app's
//! media stream of both directions, read by a task as a WebSocket's would
//! be), count, seconds measured
//! (after one second of warm-up).
//!
//! The last line is machine-readable (`scripts/bench-media` reads it):
//! `FIGURES mode=… groups=… legs=… loss_pct=… (the engine's: sent to it and
//! never relayed) kept_up=… served=… cpu_pct=… per_core=…
//! kib_per_leg=… kernel_kib_per_leg=… rtcp_sent=…` (and for `tap`:
//! `tap_frames=… tap_expected=… tap_dropped=…`).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tapir_media::rtp::write_packet;
use tapir_media::srtp::{SrtpKeys, SrtpSession, SrtpSuite};
use tapir_media::{Codec, LegId, MediaConfig, MediaEngine, RemoteMedia, Source, ToneKind};

fn engine_cpu() -> Duration {
    // Sum utime+stime of the engine's worker threads (named "tapir-media").
    let mut ticks = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("tapir-media") {
                continue;
            }
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let after = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            ticks += ut + st;
        }
    }
    Duration::from_millis(ticks * 10)
}

/// Fixed test keys: tapir's side, or the phone's side (swapped).
fn srtp_keys(phone: bool) -> SrtpKeys {
    let (a, b) = ([0x11; 30], [0x22; 30]);
    SrtpKeys {
        suite: SrtpSuite::AesCm128HmacSha1_80,
        local: if phone { b } else { a },
        remote: if phone { a } else { b },
    }
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Kernel slab memory (socket structures live there), from /proc/meminfo.
fn slab_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("Slab:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// UDP datagrams the kernel dropped for full receive buffers (system-wide).
fn udp_rcvbuf_errors() -> u64 {
    let s = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = s.lines().filter(|l| l.starts_with("Udp: "));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("relay", String::as_str).to_owned();
    let count: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(100);
    let secs: u64 = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(5);
    let per_group = match mode.as_str() {
        "mix" => 3,
        "tone" => 1,
        _ => 2,
    };
    let legs = count * per_group;

    let media_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tapir-media")
        .enable_all()
        .build()
        .unwrap();
    let load_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load")
        .enable_all()
        .build()
        .unwrap();

    let (engine, _events) = {
        let _g = media_rt.enter();
        MediaEngine::new(MediaConfig::default()).unwrap()
    };
    let endpoints: Vec<Arc<tokio::net::UdpSocket>> = load_rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..legs {
            v.push(Arc::new(
                tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            ));
        }
        v
    });
    // After the load generator's own sockets: what follows is the engine's.
    let rss0 = rss_kib();
    let slab0 = slab_kib();
    let mut targets = Vec::new();
    {
        let _g = media_rt.enter();
        for (i, ep) in endpoints.iter().enumerate() {
            let leg = LegId(i as u64);
            targets.push(engine.allocate(leg).unwrap());
            engine
                .set_remote(
                    leg,
                    RemoteMedia {
                        addr: Some(ep.local_addr().unwrap()),
                        codec: Codec::Pcmu,
                        telephone_event_pt: None,
                    },
                )
                .unwrap();
            let source = if mode == "tone" {
                Source::Tone(ToneKind::HoldMusic)
            } else {
                Source::Bridge((i / per_group) as u64)
            };
            engine.set_source(leg, source).unwrap();
            if mode == "srtp" && i % 2 == 0 {
                engine.set_srtp(leg, Some(srtp_keys(false))).unwrap();
            }
        }
    }
    // One media stream per call (`tap`), on the call's first leg.
    let mut taps = Vec::new();
    if mode == "tap" {
        for call in 0..count {
            taps.push(
                engine
                    .tap(LegId((call * per_group) as u64), true, false, 50)
                    .unwrap(),
            );
        }
    }
    let rss1 = rss_kib();
    let slab1 = slab_kib();
    let rcvbuf_errors0 = udp_rcvbuf_errors();

    let received = Arc::new(AtomicU64::new(0));
    let tap_frames = Arc::new(AtomicU64::new(0));
    let tap_dropped = Arc::new(AtomicU64::new(0));
    let rtcp_in = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let total = Duration::from_secs(secs + 1);
    load_rt.block_on(async {
        for ep in &endpoints {
            let ep = Arc::clone(ep);
            let received = Arc::clone(&received);
            let rtcp_in = Arc::clone(&rtcp_in);
            tokio::spawn(async move {
                let mut buf = [0u8; 1500];
                while let Ok((n, _)) = ep.recv_from(&mut buf).await {
                    // tapir's RTCP goes to RTP port + 1, which may be
                    // another endpoint of this generator: not media.
                    if tapir_media::rtp::is_rtcp(&buf[..n]) {
                        rtcp_in.fetch_add(1, Ordering::Relaxed);
                    } else {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        for mut tap in taps.drain(..) {
            let (frames, dropped) = (Arc::clone(&tap_frames), Arc::clone(&tap_dropped));
            tokio::spawn(async move {
                let mut seen = 0;
                while let Some(_frame) = tap.recv().await {
                    frames.fetch_add(1, Ordering::Relaxed);
                    let d = tap.dropped();
                    dropped.fetch_add(d - seen, Ordering::Relaxed);
                    seen = d;
                }
            });
        }
        let eps = endpoints.clone();
        // In srtp mode the even endpoints are SRTP phones.
        let mut phones: Vec<Option<SrtpSession>> = (0..eps.len())
            .map(|i| {
                (mode == "srtp" && i % 2 == 0).then(|| SrtpSession::new(&srtp_keys(true)).unwrap())
            })
            .collect();
        let tg = if mode == "tone" {
            Vec::new()
        } else {
            targets.clone()
        };
        let sent2 = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(20));
            let mut pkt = Vec::new();
            let payload = [0x55u8; 160];
            for k in 0u32..(total.as_millis() / 20 + 25) as u32 {
                interval.tick().await;
                for (i, ep) in eps.iter().enumerate().take(tg.len()) {
                    write_packet(&mut pkt, false, 0, k as u16, k * 160, i as u32, &payload);
                    let wire = match phones[i].as_mut() {
                        Some(p) => p.protect(&pkt).unwrap(),
                        None => pkt.clone(),
                    };
                    if ep.try_send_to(&wire, tg[i]).is_ok() {
                        sent2.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let tf0 = tap_frames.load(Ordering::Relaxed);
        let (s0, r0, c0, t0, e0) = (
            sent.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed),
            engine_cpu(),
            Instant::now(),
            engine.stats(),
        );
        tokio::time::sleep(total - Duration::from_secs(1)).await;
        let tf1 = tap_frames.load(Ordering::Relaxed);
        let (s1, r1, c1, wall, e1) = (
            sent.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed),
            engine_cpu(),
            t0.elapsed(),
            engine.stats(),
        );
        // What the engine really did in the window: packets it forwarded or
        // generated. When it keeps up this is what was offered; when it
        // falls behind (CPU taken by others), the figure per core is
        // computed from this work, not from the offered load.
        let worked = (e1.relayed + e1.generated) - (e0.relayed + e0.generated);
        // Loss over the whole run, once everything in flight has arrived:
        // a generator thread that fell behind still has packets queued in
        // its sockets, so wait (at most 5 s) until the count stops moving.
        // The engine's own queue drains first (its relayed count stops).
        let drain_until = Instant::now() + Duration::from_secs(5);
        let mut last = (u64::MAX, u64::MAX);
        while Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = (received.load(Ordering::Relaxed), engine.stats().relayed);
            if now == last {
                break;
            }
            last = now;
        }
        let all_sent = sent.load(Ordering::Relaxed);
        let all_recv = received.load(Ordering::Relaxed);
        // The engine's loss: packets sent to it that it never relayed (the
        // generator's own lag in reading them back is not the engine's).
        let e_final = engine.stats();
        let engine_loss = if matches!(mode.as_str(), "relay" | "srtp" | "tap") {
            100.0 * all_sent.saturating_sub(e_final.relayed) as f64 / all_sent.max(1) as f64
        } else {
            0.0
        };
        let rss2 = rss_kib();
        let sent = s1 - s0;
        let recv = r1 - r0;
        let cpu = (c1 - c0).as_secs_f64() / wall.as_secs_f64();
        let pps = recv as f64 / wall.as_secs_f64();
        println!(
            "mode={mode} groups={count} legs={legs} measured={:.1}s",
            wall.as_secs_f64()
        );
        println!(
            "packets in window sent={sent} received={recv} ({:.0} pkt/s out of the engine)",
            pps
        );
        println!(
            "whole run: sent={all_sent} relayed by the engine={} (engine loss {engine_loss:.3}%), read back by the generator={all_recv} ({:.3}% not (yet) read){}",
            e_final.relayed,
            100.0 * (1.0 - all_recv as f64 / all_sent.max(1) as f64),
            if !matches!(mode.as_str(), "relay" | "srtp" | "tap") {
                " (not meaningful: generated media does not depend on the load)"
            } else {
                ""
            }
        );
        // Throughput per core from the engine's own output in the window:
        // every leg gets 50 packets/s, so a group (call, conference, leg on
        // hold music) is 50 x its legs packets/s. When the engine keeps up
        // with an even load this is simply groups / CPU share; when the
        // generator or the engine fall behind, it is the work really done.
        let group_pps = 50.0 * per_group as f64;
        let served = worked as f64 / wall.as_secs_f64() / group_pps;
        let per_core = if cpu > 0.0 { served / cpu } else { 0.0 };
        let kept_up = mode == "tone" || mode == "mix" || worked as f64 >= 0.99 * sent as f64;
        println!(
            "engine output in the window: {worked} packets = {served:.0} {} served in real time{}",
            if per_group == 2 { "calls" } else { "groups" },
            if kept_up { "" } else { " -- the engine fell behind what was sent" }
        );
        println!("engine worker CPU {:.1}% of one core", cpu * 100.0);
        if cpu > 0.0 {
            println!(
                "=> ~{:.0} {} per core, {:.1} us CPU per leg per second",
                served / cpu,
                match mode.as_str() {
                    "mix" => "3-party conferences",
                    "tone" => "legs on hold music",
                    "srtp" => "relayed calls (one SRTP leg each)",
                    "tap" => "relayed calls, each with a media stream of both directions",
                    _ => "relayed calls",
                },
                cpu * 1e6 / legs as f64
            );
        }
        let per_leg = (rss1.saturating_sub(rss0)) as f64 / legs as f64;
        println!(
            "RSS: {} KiB before legs, {} KiB after {} legs => ~{:.1} KiB per leg (user space); {} KiB after the run (with the generator's tasks)",
            rss0, rss1, legs, per_leg, rss2
        );
        let stats = engine.stats();
        println!(
            "kernel UDP receive-buffer drops during the run: {} (system-wide)",
            udp_rcvbuf_errors().saturating_sub(rcvbuf_errors0)
        );
        println!(
            "engine: received={} relayed={} generated={} dropped={} send_errors={} rtcp_sent={} (seen by the generator: {})",
            stats.received,
            stats.relayed,
            stats.generated,
            stats.dropped,
            stats.send_errors,
            stats.rtcp_sent,
            rtcp_in.load(Ordering::Relaxed)
        );
        let kernel_per_leg = slab1.saturating_sub(slab0) as f64 / legs as f64;
        println!(
            "kernel slab: +{} KiB for {} legs (RTP + RTCP sockets) => ~{:.1} KiB per leg (system-wide figure, noisy)",
            slab1.saturating_sub(slab0),
            legs,
            kernel_per_leg
        );
        let tap_expected = (count as f64 * 50.0 * wall.as_secs_f64()) as u64;
        let tap_got = tf1 - tf0;
        if mode == "tap" {
            println!(
                "media streams: {tap_got} frames in the window (real time: {tap_expected}), {} dropped for full queues in the whole run",
                tap_dropped.load(Ordering::Relaxed)
            );
        }
        let tap_figures = if mode == "tap" {
            format!(
                " tap_frames={tap_got} tap_expected={tap_expected} tap_dropped={}",
                tap_dropped.load(Ordering::Relaxed)
            )
        } else {
            String::new()
        };
        println!(
            "FIGURES mode={mode} groups={count} legs={legs} loss_pct={:.3} kept_up={kept_up} served={served:.0} cpu_pct={:.1} per_core={:.0} kib_per_leg={:.1} kernel_kib_per_leg={:.1} rtcp_sent={}{tap_figures}",
            engine_loss,
            cpu * 100.0,
            per_core,
            per_leg,
            kernel_per_leg,
            stats.rtcp_sent
        );
    });
    drop(engine);
}

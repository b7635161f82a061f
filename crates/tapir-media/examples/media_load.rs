//! Load generator for the media engine over loopback: real-time G.711
//! streams (50 packets/s per direction) through relayed calls or mixed
//! conferences, reporting packets handled, loss, and the CPU time of the
//! engine's single worker thread (from /proc, Linux only).
//!
//! ```text
//! cargo run --release -p tapir-media --example media_load -- relay 200 5
//! cargo run --release -p tapir-media --example media_load -- mix 30 5
//! cargo run --release -p tapir-media --example media_load -- tone 1000 5
//! ```
//! Arguments: mode (`relay` = calls of two legs, `mix` = conferences of
//! three, `tone` = single legs hearing hold music, `srtp` = calls between
//! an SRTP phone and a plain one), count, seconds measured
//! (after one second of warm-up).
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

    let rss0 = rss_kib();
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
    let rss1 = rss_kib();

    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let total = Duration::from_secs(secs + 1);
    load_rt.block_on(async {
        for ep in &endpoints {
            let ep = Arc::clone(ep);
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                let mut buf = [0u8; 1500];
                while ep.recv_from(&mut buf).await.is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
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
        let (s0, r0, c0, t0) = (
            sent.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed),
            engine_cpu(),
            Instant::now(),
        );
        tokio::time::sleep(total - Duration::from_secs(1)).await;
        let (s1, r1, c1, wall) = (
            sent.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed),
            engine_cpu(),
            t0.elapsed(),
        );
        // Loss over the whole run, once everything in flight has arrived.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let all_sent = sent.load(Ordering::Relaxed);
        let all_recv = received.load(Ordering::Relaxed);
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
            "whole run: sent={all_sent} received={all_recv} loss={:.3}%{}",
            100.0 * (1.0 - all_recv as f64 / all_sent.max(1) as f64),
            if mode != "relay" && mode != "srtp" {
                " (not meaningful: generated media does not depend on the load)"
            } else {
                ""
            }
        );
        println!("engine worker CPU {:.1}% of one core", cpu * 100.0);
        if cpu > 0.0 {
            println!(
                "=> ~{:.0} {} per core, {:.1} us CPU per leg per second",
                count as f64 / cpu,
                match mode.as_str() {
                    "mix" => "3-party conferences",
                    "tone" => "legs on hold music",
                    "srtp" => "relayed calls (one SRTP leg each)",
                    _ => "relayed calls",
                },
                cpu * 1e6 / legs as f64
            );
        }
        println!(
            "RSS: {} KiB before legs, {} KiB after {} legs => ~{:.1} KiB per leg (user space)",
            rss0,
            rss1,
            legs,
            (rss1.saturating_sub(rss0)) as f64 / legs as f64
        );
    });
    drop(engine);
}

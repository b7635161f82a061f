//! Benchmarks of the switch core, driven sans-IO with device reports fed back
//! by hand (no simulation harness in the measured loop).
//!
//! - `call_mix`: one realistic call life — make call (third-party, from a
//!   phone), device answers, callee alerts and answers, hold, unhold,
//!   consultation transfer to a third phone, drop, deallocate — and reports the
//!   time per switch operation (app requests plus device inputs).
//! - memory: heap bytes per active two-party call (two TAPI call objects, a
//!   bridge and two legs), measured with a counting allocator and printed.
//!
//! `cargo bench -p tapir-core --bench switch`

// The counting allocator below is the only unsafe code: a GlobalAlloc must be.
#![allow(missing_docs, clippy::unwrap_used, unsafe_code)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use tapir_core::*;

/// Counts live heap bytes, so the memory figure is exact, not sampled.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A switch with `n` phones (addresses 10000…), one app owning all of them.
fn switch_with_phones(n: usize) -> (Switch, AppId, Vec<String>) {
    let mut sw = Switch::default();
    let app = sw.register_app(AppConfig::named("bench"));
    let mut addresses = Vec::with_capacity(n);
    for i in 0..n {
        let a = (10_000 + i).to_string();
        let line = sw.add_line(LineConfig::phone(&a)).unwrap();
        sw.open_line(app, line, &[Privilege::Owner], &[]).unwrap();
        addresses.push(a);
    }
    drain(&mut sw, &mut Vec::new());
    (sw, app, addresses)
}

/// Drain the outputs; remember the legs the switch created.
fn drain(sw: &mut Switch, created: &mut Vec<LegId>) {
    while let Some(out) = sw.poll_output() {
        if let Output::Effect(Effect::CreateLeg { leg, .. }) = out {
            created.push(leg);
        }
    }
}

/// Feed one device report and drain.
fn report(sw: &mut Switch, now: Timestamp, leg: LegId, event: LegEvent, created: &mut Vec<LegId>) {
    sw.handle(now, Input::Leg { leg, event });
    drain(sw, created);
}

/// One call life among phones a, b, c. Returns the number of switch operations.
fn call_life(sw: &mut Switch, app: AppId, a: &str, b: &str, c: &str, now: Timestamp) -> u64 {
    let mut legs = Vec::new();
    let mut ops = 0;
    let call = sw.make_call(now, app, a, Some(b)).unwrap();
    drain(sw, &mut legs);
    let own = legs.pop().unwrap();
    report(sw, now, own, LegEvent::Answered, &mut legs);
    let callee_leg = legs.pop().unwrap();
    report(sw, now, callee_leg, LegEvent::Alerting, &mut legs);
    report(sw, now, callee_leg, LegEvent::Answered, &mut legs);
    ops += 4;
    sw.hold(now, app, call).unwrap();
    drain(sw, &mut legs);
    sw.unhold(now, app, call).unwrap();
    drain(sw, &mut legs);
    let consult = sw.setup_transfer(now, app, call).unwrap();
    drain(sw, &mut legs);
    let consult_leg = legs.pop().unwrap();
    report(sw, now, consult_leg, LegEvent::Answered, &mut legs);
    sw.dial(now, app, consult, c).unwrap();
    drain(sw, &mut legs);
    let third_leg = legs.pop().unwrap();
    report(sw, now, third_leg, LegEvent::Alerting, &mut legs);
    report(sw, now, third_leg, LegEvent::Answered, &mut legs);
    sw.complete_transfer(now, app, call, consult, TransferMode::Transfer)
        .unwrap();
    drain(sw, &mut legs);
    ops += 8;
    // b and c now talk; c's phone hangs up, b's call ends with it.
    report(sw, now, third_leg, LegEvent::HungUp, &mut legs);
    ops += 1;
    for h in sw.calls_of(app) {
        sw.deallocate_call(now, app, h).unwrap();
        ops += 1;
    }
    drain(sw, &mut legs);
    ops
}

fn bench_call_mix(cr: &mut Criterion) {
    let (mut sw, app, phones) = switch_with_phones(300);
    let now = Timestamp(1);
    let ops = call_life(&mut sw, app, &phones[0], &phones[1], &phones[2], now);
    assert!(
        sw.all_calls().is_empty(),
        "a call life must leave nothing behind"
    );
    let mut group = cr.benchmark_group("switch");
    group.throughput(Throughput::Elements(ops));
    let mut i = 0usize;
    group.bench_function("call_mix", |bch| {
        bch.iter(|| {
            let a = &phones[(i * 3) % 300];
            let b = &phones[(i * 3 + 1) % 300];
            let c = &phones[(i * 3 + 2) % 300];
            i += 1;
            call_life(&mut sw, app, a, b, c, now)
        })
    });
    group.finish();
    eprintln!("call_mix: {ops} switch operations per call life (requests + device reports)");
}

fn report_memory(_: &mut Criterion) {
    const CALLS: usize = 10_000;
    let (mut sw, app, phones) = switch_with_phones(2 * CALLS);
    let now = Timestamp(1);
    let before = LIVE.load(Ordering::Relaxed);
    let mut legs = Vec::new();
    for i in 0..CALLS {
        sw.make_call(now, app, &phones[2 * i], Some(&phones[2 * i + 1]))
            .unwrap();
        drain(&mut sw, &mut legs);
        let own = legs.pop().unwrap();
        report(&mut sw, now, own, LegEvent::Answered, &mut legs);
        let callee = legs.pop().unwrap();
        report(&mut sw, now, callee, LegEvent::Answered, &mut legs);
    }
    let after = LIVE.load(Ordering::Relaxed);
    let connected = sw
        .all_calls()
        .into_iter()
        .filter(|c| sw.call_state(*c) == Some(CallStateKind::Connected))
        .count();
    assert_eq!(connected, 2 * CALLS);
    let per_connection = (after - before) as f64 / CALLS as f64;
    eprintln!(
        "memory: {CALLS} active two-party calls use {} bytes of heap: {:.0} bytes per call \
         ({:.0} bytes per TAPI call object, two per call)",
        after - before,
        per_connection,
        per_connection / 2.0
    );
}

criterion_group!(benches, bench_call_mix, report_memory);
criterion_main!(benches);

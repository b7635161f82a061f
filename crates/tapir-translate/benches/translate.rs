//! Translations per second (issue 3 asks for at least 1,000,000/s on one
//! core): `cargo bench -p tapir-translate`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tapir_translate::{
    AddressList, CallingCard, DialingRules, Location, TranslateOptions, translate_address,
};

fn bench(c: &mut Criterion) {
    let mut l = Location::new("redmond", 1, "425");
    l.local_access = "9".into();
    l.long_distance_access = "9".into();
    l.toll_prefixes = vec!["882".into(), "936".into()];
    let mut card = CallingCard::new(
        "mci",
        "MCI",
        DialingRules::new(
            "G",
            "18006747000,,,,,,TH,,FG",
            "18006747000,,,,,,TH,,011EFG",
        ),
    );
    card.card_number = "4255550000".into();
    card.pin = "8642".into();
    // country defaults are built once, on first use
    let _ = translate_address("+1 (425) 555-1212", &l, None, TranslateOptions::NONE);

    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(1));
    for (name, address, card) in [
        ("local", "+1 (425) 555-1212", None),
        ("long_distance", "+1 (206) 555-1234", None),
        ("international", "+44 (20) 7946 0958", None),
        ("card", "+1 (206) 555-1234", Some(&card)),
        ("dialable", "9,5551212", None),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| translate_address(black_box(address), &l, card, TranslateOptions::NONE))
        });
    }
    g.bench_function("parse_canonical", |b| {
        b.iter(|| AddressList::parse(black_box("+1 (425) 882-8080|4711^Pat")))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

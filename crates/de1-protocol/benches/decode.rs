//! Decode speed of the two hottest notifications: ShotSample (about 5 per second, all
//! the time) and StateInfo.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use de1_protocol::packets::{ShotSample, StateInfo};

const SHOT_SAMPLE: [u8; 19] = [
    0x12, 0x34, 0x90, 0x00, 0x20, 0x00, 0x5C, 0x80, 0x5D, 0x40, 0x00, 0x5C, 0x00, 0x5D, 0x00, 0x90,
    0x00, 0x02, 0x96,
];

fn decode(c: &mut Criterion) {
    c.bench_function("ShotSample::decode", |b| {
        b.iter(|| ShotSample::decode(black_box(&SHOT_SAMPLE[..])))
    });
    c.bench_function("ShotSample::decode+values", |b| {
        b.iter(|| ShotSample::decode(black_box(&SHOT_SAMPLE[..])).map(|s| s.values()))
    });
    c.bench_function("ShotSample::encode", |b| {
        let s = ShotSample::decode(&SHOT_SAMPLE).unwrap_or_default();
        b.iter(|| black_box(&s).encode())
    });
    c.bench_function("StateInfo::decode", |b| {
        b.iter(|| StateInfo::decode(black_box(&[0x04, 0x05][..])))
    });
}

criterion_group!(benches, decode);
criterion_main!(benches);

//! Encoding every reference profile (parse + validate + encode + both SHA-1s).
//! Goal: all of them together well under 20 ms.

use std::fs;
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use de1_protocol::profile::encode_profile;

fn reference_sources() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/profiles");
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".json") && !name.ends_with(".expected.json")
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn bench_profiles(c: &mut Criterion) {
    let sources = reference_sources();
    assert!(!sources.is_empty(), "no reference profiles found");
    let name = format!("encode all {} reference profiles", sources.len());
    c.bench_function(&name, |b| {
        b.iter(|| {
            let mut accepted = 0usize;
            for src in &sources {
                if encode_profile(black_box(src)).is_ok() {
                    accepted += 1;
                }
            }
            accepted
        })
    });
}

criterion_group!(benches, bench_profiles);
criterion_main!(benches);

//! Criterion benchmarks only: see `benches/`.

//! Criterion benches of rauta-stats against `prometheus` and `metrics` live
//! in `benches/stats.rs`; this library is empty.

//! Benchmarks of `rauta-balance` beside `pingora-load-balancing`; see
//! `benches/balance.rs` and `docs/benchmarks/balance.md`. This library is empty.

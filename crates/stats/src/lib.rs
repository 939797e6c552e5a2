//! rauta-stats.

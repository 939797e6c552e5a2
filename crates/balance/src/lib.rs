//! rauta-balance.

//! rauta-xdp.

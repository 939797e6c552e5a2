//! rauta-xdp-common.

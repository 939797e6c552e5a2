//! rauta-cli.

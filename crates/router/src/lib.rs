//! rauta-router.

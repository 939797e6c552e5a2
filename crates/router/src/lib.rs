//! rauta-router: Envoy route semantics as a library.
#![forbid(unsafe_code)]

pub mod authority;
pub mod config;
pub mod path;

mod build;
mod error;
mod matchers;
mod mutate;
mod re;
mod request;
mod router;
mod table;
mod template;

pub use error::{ConfigError, ConfigErrors, ErrorKind};
pub use mutate::HeaderMapMut;
pub use request::{HeaderValues, Request, RequestView};
pub use router::{Router, RouterCache, Snapshot, Version};
pub use table::{
    ActionKind, BuildOptions, Decision, PathKind, RetryPolicy, RouteEntry, RouteId, RouteMatch,
    RouteTable, Upstream, VirtualHostEntry,
};

//! Email manager sidecar for NocoBase.
//!
//! Where a request goes: `startup` wires the HTTP routes; `api/` has one file per NocoBase
//! resource; `auth/` checks the host JWT and role; `providers/` holds the Gmail and Microsoft
//! Graph adapters behind one trait; `db/` the schema and queries; `web/` the pages the host
//! forwards; `sandbox/` the offline stand-in for Google, Microsoft and the NocoBase host that the
//! tests and `make demo` use.

/// mimalloc for every binary that links the crate (the service, tests, benches): sync, HTTP
/// and MIME parsing allocate and free many short-lived buffers, which glibc's malloc served at a
/// measurable cost (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod api;
pub mod auth;
pub mod config;
pub mod crypto;
pub mod db;
pub mod draft_mirror;
pub mod error;
pub mod manifest;
pub mod metrics;
pub mod providers;
pub mod sandbox;
pub mod send;
pub mod startup;
pub mod state;
pub mod sync;
pub mod web;
pub mod writeback;

pub mod label_writeback;

/// Mass mailing (issue 5): the worker that sends each recipient once.
pub mod mass;

//! The auth callback against real merchants on 127.0.0.1 (DESIGN §5): one test binary,
//! one module per concern.

mod answers;
mod auth_methods;
mod budget;
mod cache;
mod failures;
mod support;

//! End-to-end tests of `webhooks-local`: the built binary started as a process on a temp
//! data dir, driven over HTTP like a user would, webhooks received by a real merchant.

mod endpoint_health;
mod harness;
mod outage;
mod portal;
mod scenarios;

//! The merchant API through real HTTP requests, on the embedded backend: route by route
//! (each behaviour test runs twice, straight through the router and through `lambda_http`
//! as an API Gateway v2 event), tenant isolation, the route table against openapi.yaml,
//! rate limits shared by two instances over one store, and the logs of a whole scenario
//! searched for secrets.

mod auth_callback;
mod deliveries;
mod errors;
mod fuzz;
mod isolation;
mod logs;
mod recover;
mod shared_limits;
mod spec;
mod ssrf;
mod stats;
mod subscription_rate_limit;
mod subscriptions;
mod support;

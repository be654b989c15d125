//! The functions as Lambda runs them: a Lambda Runtime API emulator on loopback, the
//! bootstrap process it serves, and the events Lambda would hand it.
//!
//! [`LambdaEmulator`] (`runtime_api.rs`) serves the Runtime API (`2018-06-01`) the way
//! `lambda_runtime` 1.5 calls it:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /2018-06-01/runtime/invocation/next` | blocks until [`LambdaEmulator::invoke`] queues an event, then 200 with the event as body and the `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id` headers |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | 202; the body is that invocation's result |
//! | `POST /2018-06-01/runtime/invocation/{id}/error` | 202; the body (`{errorType, errorMessage}`) is that invocation's error |
//! | `POST /2018-06-01/runtime/init/error` | 202; every waiting and later invocation fails with the body |
//!
//! An answer for an id that is not in flight is 400, one for an invocation whose caller
//! stopped waiting is 410 (as Lambda answers a stale response), bodies over Lambda's 6 MB are
//! 413, and any other path is 404.
//!
//! [`FunctionProcess`] (`process.rs`) starts a bootstrap with Lambda's reserved environment
//! variables and measures its init time and RSS. [`LambdaStack`] (`stack.rs`) is what every
//! function's `lambda_runtime` test starts from: the platform on moto
//! ([`MotoDeployment`](crate::moto::MotoDeployment)) and the bootstrap polling its emulator;
//! [`LambdaStack::sqs_event_carrying`] and [`api_gateway_v2_event`] (`api_gateway.rs`) build
//! the events an SQS event source mapping and an API Gateway HTTP API send.

mod api_gateway;
mod process;
mod runtime_api;
mod stack;

pub use api_gateway::api_gateway_v2_event;
pub use process::{BootstrapFigures, DEFAULT_MEMORY_SIZE_MB, FunctionProcess, NotPolling, bootstrap_binary};
pub use runtime_api::LambdaEmulator;
pub use stack::{LOOPBACK_URLS, LambdaStack, METRICS_NAMESPACE};

/// The region every emulated resource lives in.
pub const REGION: &str = "us-east-1";
/// The account moto and the emulator put in ARNs.
pub const ACCOUNT_ID: &str = "123456789012";

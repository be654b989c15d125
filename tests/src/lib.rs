//! The harness the whole-system tests share: moto server and the platform deployed on it,
//! behind a layer that enforces the AWS quotas moto forgives, the functions on a Lambda
//! Runtime API emulator and the metric lines they print, a loopback merchant, the merchants' own verifiers in other
//! languages (Node.js and Python), and the test data they all use.

pub mod aws_quotas;
pub mod backends;
pub mod clock;
pub mod emf;
pub mod faults;
pub mod fixtures;
pub mod lambda_emulator;
pub mod merchant;
pub mod moto;
pub mod verifiers;

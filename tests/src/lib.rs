//! The harness the whole-system tests share: the merchants' own verifiers in other
//! languages (Node.js and Python) and moto server, driven as real processes.

pub mod backends;
pub mod lambda_emulator;
pub mod merchant;
pub mod moto;
pub mod verifiers;

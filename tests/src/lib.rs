//! The harness the whole-system tests share: the merchants' own verifiers in other
//! languages (Node.js and Python), driven as real processes.

pub mod verifiers;

//! Example domains written only against sekiban's public API.
#![deny(missing_docs)]

pub mod bank;

/// The root README's examples, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct RootReadme;

//! Example domains written only against sekiban's public API.

pub mod bank;

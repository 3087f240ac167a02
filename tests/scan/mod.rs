//! Integration tests of `poisongate scan`, one module per concern.

mod bad_input;
mod clean;
mod detection;
mod determinism;
mod findings;
mod images;
mod outputs;
mod streaming;
mod text;

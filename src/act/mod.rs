//! Side effects the decisions ask for. Each has a timeout where it can wait and logs clearly.

pub mod alerts;
pub mod command;
pub mod files;
pub mod follow;
pub mod rejoin;
pub mod running;

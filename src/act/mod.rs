//! Side effects the decisions ask for. Each has a timeout where it can wait and logs clearly;
//! an action on our own node that fails says why with an [`ActError`] (see [`error`]).

pub mod alerts;
pub mod command;
pub mod error;
pub mod files;
pub mod follow;
pub mod reinit;
pub mod rejoin;
pub mod running;
pub mod switchover;
pub mod sync;

pub use error::{ActError, Step};

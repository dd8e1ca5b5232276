//! `ckpt-inspect` as a library: the pieces the binary's subcommands call.

pub mod core_export;
pub mod fsview;

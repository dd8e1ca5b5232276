//! `ckpt-inspect` as a library: the pieces the binary's subcommands call.

pub mod fsview;

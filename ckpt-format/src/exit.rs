//! The exit codes of every ckpt binary (`ckpt-capture`, `ckpt-restore`, `ckpt-inspect`):
//! one table, printed by each one's `--help` ([`HELP`]) and in README.md.

/// Success (image written, restored, valid, equal, found, restorable here).
pub const OK: i32 = 0;
/// Refused or invalid: an invalid image, failed verification, differences found, a
/// capture or restore refused (something unsupported, not restorable here, children
/// that `--kill` would orphan, a pid taken) or failed because of the target.
pub const REFUSED: i32 = 1;
/// Usage error: bad arguments.
pub const USAGE: i32 = 2;
/// Environment: I/O, a missing or unreadable input file, an output that cannot be
/// written, a kernel facility missing, not permitted (ptrace, capabilities).
pub const ENVIRONMENT: i32 = 3;

/// The table as `--help` prints it.
pub const HELP: &str = "\
Exit codes (the same for ckpt-capture, ckpt-restore and ckpt-inspect):
  0  success
  1  refused or invalid: invalid image, failed verification, differences
     found, capture/restore refused (unsupported object, not restorable
     here, children --kill would orphan, pid taken) or failed because of
     the target
  2  usage error (bad arguments)
  3  environment: I/O, a missing or unreadable input file, an output that
     cannot be written, a kernel facility missing, not permitted";

//! `ckpt-capture` — not implemented yet (see the open issue for it).
#![deny(missing_docs)]

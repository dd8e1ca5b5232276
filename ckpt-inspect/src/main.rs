//! `ckpt-inspect` — not implemented yet (see the open issue for it).
fn main() {
    eprintln!("ckpt-inspect: not implemented yet");
    std::process::exit(2);
}

//! `cargo run -p ckpt-criu --example pack -- DIR OUT`: write a CRIU image directory as a pack
//! (the fuzz targets' input format and fixtures/criu/*.pack).
fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 3 {
        eprintln!("usage: pack DIR OUT");
        std::process::exit(2);
    }
    let b = ckpt_criu::set::pack_dir(std::path::Path::new(&a[1])).unwrap_or_else(|e| {
        eprintln!("pack: {}: {e}", a[1]);
        std::process::exit(3)
    });
    std::fs::write(&a[2], b).unwrap_or_else(|e| {
        eprintln!("pack: {}: {e}", a[2]);
        std::process::exit(3)
    });
}

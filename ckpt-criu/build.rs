//! Compiles CRIU's vendored `proto/*.proto` (MIT, see proto/LICENSE) into prost types.
fn main() {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir("proto")
        .expect("proto/ directory")
        .map(|e| e.expect("proto/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        // rpc.proto is CRIU's RPC protocol, not image contents; its criu_opts message would
        // also take the Rust name of opts.proto's CRIU_Opts.
        .filter(|p| !p.ends_with("rpc.proto"))
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(&files, ["proto"]).expect("compiling CRIU's .proto files");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("generating Rust from CRIU's .proto files");
}

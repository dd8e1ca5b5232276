//! `ckpt-restore [--pid-same | --pid-any | --pid-ns] [--leave-stopped] [--root DIR] [--json] IMAGE|-`
use ckpt_restore::{Options, PidMode};
use clap::Parser;
use std::path::PathBuf;

/// Recreate a captured process so that it continues exactly; prints its pid(s).
#[derive(Parser, Debug)]
#[command(name = "ckpt-restore", version, after_help = ckpt_format::exit::HELP)]
struct Cli {
    /// Fail if an original pid is taken (default: use it when free).
    #[arg(long, conflicts_with = "pid_any")]
    pid_same: bool,
    /// Let the kernel choose every pid.
    #[arg(long, conflicts_with = "pid_ns")]
    pid_any: bool,
    /// Restore into a new pid namespace where every captured pid is free (for a tree
    /// whose pids are taken here); a small init (`ckpt-nsinit`) is its pid 1 and exits
    /// with the tree. The pids printed are the ones outside the namespace.
    #[arg(long, conflicts_with = "pid_same")]
    pid_ns: bool,
    /// Leave the restored process stopped (SIGSTOP), detached.
    #[arg(long)]
    leave_stopped: bool,
    /// Resolve every path of the image inside DIR.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// A terminal of the image that another session holds now: put the fd on
    /// ckpt-restore's own terminal (said on stderr) instead of refusing.
    #[arg(long)]
    reattach_tty: bool,
    /// Print {"pids": [...]} instead of one pid per line.
    #[arg(long)]
    json: bool,
    /// The image file, or - for standard input.
    image: PathBuf,
}

fn main() {
    let cli = Cli::parse();
    let opts = Options {
        pid_mode: if cli.pid_same {
            PidMode::Same
        } else if cli.pid_any {
            PidMode::Any
        } else if cli.pid_ns {
            PidMode::Namespace
        } else {
            PidMode::Prefer
        },
        leave_stopped: cli.leave_stopped,
        root: cli.root.clone(),
        reattach_tty: cli.reattach_tty,
    };
    let fail = |code: i32, msg: String| -> ! {
        if cli.json {
            println!("{}", serde_json::json!({"error": msg, "exit_code": code}));
        }
        eprintln!("ckpt-restore: {msg}");
        std::process::exit(code);
    };
    let map: memmap2::Mmap;
    let result = if cli.image.as_os_str() == "-" {
        // A regular file on stdin is mapped like any image file; anything else (a pipe)
        // is streamed with bounded memory (ckpt_restore::restore_reader).
        use std::os::fd::AsFd;
        let as_file = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::fs::File::from)
            .filter(|f| f.metadata().is_ok_and(|m| m.is_file() && m.len() > 0));
        match as_file {
            Some(f) => {
                map = match ckpt_restore::map_image(&f) {
                    Ok(m) => m,
                    Err(e) => fail(3, format!("standard input: {e}")),
                };
                ckpt_restore::restore_bytes(&map, &opts)
            }
            None => ckpt_restore::restore_reader(std::io::stdin().lock(), &opts),
        }
    } else {
        let f = match std::fs::File::open(&cli.image) {
            Ok(f) => f,
            Err(e) => fail(3, format!("{}: {e}", cli.image.display())),
        };
        let md = f.metadata().ok();
        if md.as_ref().is_some_and(|m| m.is_file() && m.len() == 0) {
            ckpt_restore::restore_bytes(&[], &opts)
        } else if md.is_some_and(|m| m.is_file()) {
            map = match ckpt_restore::map_image(&f) {
                Ok(m) => m,
                Err(e) => fail(3, format!("{}: {e}", cli.image.display())),
            };
            // A pre-copy increment: its parents are mapped too (docs/FORMAT.md).
            let parents = ckpt_format::chain::load_parents(&cli.image, &map, |p| {
                ckpt_restore::map_image(&std::fs::File::open(p)?)
            });
            match parents {
                Ok(ps) if !ps.is_empty() => {
                    let slices: Vec<&[u8]> = ps.iter().map(|m| &m[..]).collect();
                    ckpt_restore::restore_chain(&map, &slices, &opts)
                }
                Ok(_) => ckpt_restore::restore_bytes(&map, &opts),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    fail(1, format!("{}: {e}", cli.image.display()))
                }
                Err(e) => fail(3, format!("{}: {e}", cli.image.display())),
            }
        } else {
            // A FIFO or a device given by name: a stream like stdin.
            ckpt_restore::restore_reader(std::io::BufReader::new(f), &opts)
        }
    };
    match result {
        Ok(pids) => {
            if cli.json {
                println!("{}", serde_json::json!({ "pids": pids }));
            } else {
                for p in pids {
                    println!("{p}");
                }
            }
        }
        Err(e) => fail(e.exit_code(), e.to_string()),
    }
}

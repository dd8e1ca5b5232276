//! `ckpt-capture [--tree] [--leave-running | --leave-stopped | --kill] [--allow-unsupported]
//! [--json] [-o FILE | -o -] PID`
//!
//! Exit codes: `ckpt_format::exit` (printed by `--help`).

use ckpt_capture::{
    capture_to_path, capture_to_writer, ident_of_fd, ident_of_path, live::LiveCapture, Leave,
    Options, Progress,
};
use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Capture a running Linux x86-64 process (or process tree) into a native-1 image.
#[derive(Parser, Debug)]
#[command(name = "ckpt-capture", version, after_help = ckpt_format::exit::HELP)]
struct Cli {
    /// Capture PID and all its descendants.
    #[arg(long)]
    tree: bool,
    /// Let the target continue after the capture (default).
    #[arg(long, group = "leave")]
    leave_running: bool,
    /// Leave the target stopped (SIGSTOP) after the capture.
    #[arg(long, group = "leave")]
    leave_stopped: bool,
    /// Kill the target after a successful capture.
    #[arg(long, group = "leave")]
    kill: bool,
    /// Record sockets and anonymous inodes as unsupported files instead of failing
    /// (restore then goes without them, and says so).
    #[arg(long)]
    allow_unsupported: bool,
    /// With --kill and without --tree: kill the process even though its children are
    /// not captured (they are orphaned). Refused otherwise.
    #[arg(long, requires = "kill")]
    orphan_children: bool,
    /// Record a unix socket whose peer is outside the captured processes as
    /// disconnected (restored as a connection whose peer has gone: its queued bytes,
    /// then end of file) instead of refusing it.
    #[arg(long)]
    disconnect_sockets: bool,
    /// Print the statistics as one JSON line on stderr.
    #[arg(long)]
    json: bool,
    /// Pre-copy pass: write the memory while the target keeps running (stopped only to
    /// start write tracking and list its pages); not restorable by itself. A later
    /// capture with --parent writes only what changed (docs/CAPTURE.md, "Pre-copy").
    #[arg(long, conflicts_with_all = ["tree", "kill", "leave_stopped"])]
    pre: bool,
    /// Write an increment of this image (a pre-copy pass of the same process): pages
    /// not written since are kept in it. Without tracking, every page is written.
    #[arg(long, value_name = "IMG", conflicts_with = "tree")]
    parent: Option<PathBuf>,
    /// Output file, or `-` for stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    /// The process to capture.
    pid: i32,
}

struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn add_total(&mut self, pages: u64) {
        self.0.inc_length(pages);
    }
    fn advance(&mut self, pages: u64) {
        self.0.inc(pages);
    }
}

fn main() {
    // The holder a pre-copy pass leaves behind (crate::precopy): not for users.
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "--hold-tracker" {
        let (pid, fd) = (args[2].parse().unwrap_or(0), args[3].parse().unwrap_or(-1));
        std::process::exit(ckpt_capture::precopy::hold(pid, fd));
    }
    let cli = Cli::parse();
    let mut opts = Options::new(cli.pid);
    opts.tree = cli.tree;
    opts.allow_unsupported = cli.allow_unsupported;
    opts.orphan_children = cli.orphan_children;
    opts.disconnect_sockets = cli.disconnect_sockets;
    opts.leave = if cli.leave_stopped {
        Leave::Stopped
    } else if cli.kill {
        Leave::Killed
    } else {
        Leave::Running
    };
    // Tuning knobs for benchmarks (docs/CAPTURE.md).
    if let Some(k) = std::env::var("CKPT_BATCH_KIB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        opts.batch_bytes = k << 10;
    }
    if let Ok(v) = std::env::var("CKPT_PIPELINE") {
        opts.pipeline = v == "1";
    }
    if let Ok(v) = std::env::var("CKPT_DIRECT") {
        opts.direct = v != "0";
    }
    let to_stdout = cli.output.as_os_str() == "-";
    if to_stdout {
        if std::io::stdout().is_terminal() {
            eprintln!("ckpt-capture: refusing to write an image to a terminal; use -o FILE or redirect stdout");
            std::process::exit(ckpt_format::exit::USAGE);
        }
        opts.output.extend(ident_of_fd(1));
    } else {
        opts.output.extend(ident_of_path(&cli.output));
    }
    let mut bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} capturing [{bar:40}] {pos}/{len} pages {binary_bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(Bar(b))
    } else {
        None
    };
    let out_path = (!to_stdout).then(|| cli.output.clone());
    let mut producer: Box<dyn ckpt_capture::Producer> = if cli.pre {
        Box::new(ckpt_capture::precopy::PreCapture::new(
            opts.clone(),
            cli.parent.clone(),
            out_path,
        ))
    } else {
        match &cli.parent {
            Some(p) => Box::new(LiveCapture::new(opts.clone()).increment_of(p.clone(), out_path)),
            None => Box::new(LiveCapture::new(opts.clone())),
        }
    };
    let producer = &mut *producer;
    let progress = bar.as_mut().map(|b| b as &mut dyn Progress);
    let r = if to_stdout {
        let out = std::io::stdout().lock();
        capture_to_writer(producer, out, progress)
    } else {
        capture_to_path(producer, &opts, &cli.output, progress)
    };
    if let Some(b) = &bar {
        b.0.finish_and_clear();
    }
    match r {
        Ok(stats) => {
            for l in &stats.left_out {
                eprintln!("ckpt-capture: left out (restore goes without it): {l}");
            }
            for w in &stats.warnings {
                eprintln!("ckpt-capture: warning: {w}");
            }
            if cli.json {
                eprintln!("{}", stats.to_json());
            } else {
                eprintln!("ckpt-capture: {stats}");
            }
        }
        Err(e) => {
            if cli.json {
                eprintln!(
                    "{}",
                    serde_json::json!({"error": e.msg, "exit_code": e.exit_code()})
                );
            }
            eprintln!("ckpt-capture: capture of pid {} failed: {e}", cli.pid);
            std::process::exit(e.exit_code());
        }
    }
}

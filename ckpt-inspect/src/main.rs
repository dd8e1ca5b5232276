//! `ckpt-inspect`: show, list, verify, convert, compare and search checkpoint images.
//!
//! A thin command line over the `ckpt_inspect` library; exit codes are in
//! `--help` and docs/INSPECT.md.

use ckpt_inspect::source::Image;
use ckpt_inspect::{diff, mem, records, render, summary, verify, Failure};
use clap::{Parser, Subcommand};
use std::io::{self, Read, Write};
use std::path::Path;

/// The text after every command's help: the image argument and the exit codes shared by
/// every ckpt binary (`ckpt_format::exit`).
fn exit_codes() -> String {
    format!(
        "Every IMAGE may be `-` for stdin; every command works on a pipe. An IMAGE may\n\
         also be a CRIU image directory or a container checkpoint archive (tar, tar.gz,\n\
         tar.zst as Podman, CRI-O and the kubelet write them): docs/CRIU.md.\n\n{}",
        ckpt_format::exit::HELP
    )
}

#[derive(Parser, Debug)]
#[command(
    name = "ckpt-inspect",
    version,
    about = "Inspect Linux process checkpoint images (native-1, ckpt-v21, cr-v5, CRIU dumps)",
    after_help = exit_codes(),
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Image to show (same as `show IMAGE`).
    image: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Header, task tree, threads, memory map, fds, shared objects and totals.
    #[command(after_help = exit_codes())]
    Show {
        /// Print JSON (docs/JSON.md).
        #[arg(long)]
        json: bool,
        /// The image (`-` for stdin).
        image: String,
    },
    /// Every record: offset, type name and code, length, parent, objref.
    #[command(after_help = exit_codes())]
    Records {
        /// Print JSON (docs/JSON.md).
        #[arg(long)]
        json: bool,
        /// The image (`-` for stdin).
        image: String,
    },
    /// Check every rule of the format and every checksum.
    #[command(after_help = exit_codes())]
    Verify {
        /// Print JSON (docs/JSON.md).
        #[arg(long)]
        json: bool,
        /// The image (`-` for stdin).
        image: String,
    },
    /// Would ckpt-restore restore it here? "restorable here: yes", or "no" and every
    /// reason (the check ckpt-restore and ckpt-capture --kill run). Exit 0 yes, 1 no.
    #[command(after_help = exit_codes())]
    Check {
        /// Print JSON (docs/JSON.md).
        #[arg(long)]
        json: bool,
        /// Resolve the image's paths inside DIR (as `ckpt-restore --root DIR`).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: std::path::PathBuf,
        /// The image (`-` for stdin).
        image: String,
    },
    /// Convert an image to another revision.
    #[command(after_help = exit_codes())]
    Convert {
        /// Target revision: native-1, ckpt-v21 or cr-v5.
        #[arg(long = "to", value_parser = parse_rev)]
        to: ckpt_format::Revision,
        /// Convert even when the target cannot represent everything (lists what is dropped).
        #[arg(long)]
        lossy: bool,
        /// Kernel release to retarget the header to; `keep` keeps the source's
        /// kernel. Default: the running kernel.
        #[arg(long, value_name = "RELEASE")]
        target_kernel: Option<String>,
        /// Input image (`-` for stdin).
        input: String,
        /// Output image (`-` for stdout), as `-o FILE` (the old positional form is still
        /// accepted). A new or regular file is replaced through a temporary file; a FIFO or
        /// device is written through; a directory is refused.
        #[arg(
            short = 'o',
            long = "output",
            value_name = "OUT",
            conflicts_with = "out_pos"
        )]
        output: Option<String>,
        /// Output image (older form of `-o OUT`).
        #[arg(value_name = "OUT", required_unless_present = "output")]
        out_pos: Option<String>,
    },
    /// Record layouts of a revision (all revisions when --rev is not given).
    Schema {
        /// native-1, ckpt-v21 or cr-v5.
        #[arg(long, value_parser = parse_rev)]
        rev: Option<ckpt_format::Revision>,
    },
    /// Semantic differences: header, tasks, registers, VMAs, fds, page contents.
    #[command(after_help = exit_codes())]
    Diff {
        /// Print JSON (docs/JSON.md).
        #[arg(long)]
        json: bool,
        /// First image (A).
        a: String,
        /// Second image (B).
        b: String,
    },
    /// Captured memory of a task: hexdump/raw bytes of a range, or pattern search.
    #[command(after_help = exit_codes())]
    Mem {
        /// The image (`-` for stdin).
        image: String,
        /// The task.
        #[arg(long)]
        pid: i32,
        /// Start address (hex with 0x, or decimal).
        #[arg(long, value_parser = parse_u64, required_unless_present = "search", conflicts_with = "search")]
        addr: Option<u64>,
        /// Bytes to show.
        #[arg(long, value_parser = parse_u64, default_value = "256")]
        len: u64,
        /// Write the raw bytes instead of a hexdump (refused when part is not captured).
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        /// Every address where PATTERN occurs: text, or `hex:` followed by hex bytes.
        #[arg(long, value_name = "PATTERN")]
        search: Option<String>,
        /// Most matches listed by --search.
        #[arg(long, default_value = "10000")]
        max: usize,
        /// Print JSON (docs/JSON.md).
        #[arg(long)]
        json: bool,
    },
    /// Write the image as a directory tree, one value per file (docs/FSVIEW.md).
    #[command(after_help = exit_codes())]
    Explode {
        /// The image (`-` for stdin).
        image: String,
        /// Directory to create (must not exist or be empty).
        dir: std::path::PathBuf,
    },
    /// Build an image from a tree written by `explode` (possibly edited).
    #[command(after_help = exit_codes())]
    Implode {
        /// The tree.
        dir: std::path::PathBuf,
        /// Output image; written to a temporary file next to it, then renamed.
        #[arg(short = 'o', long = "output")]
        output: std::path::PathBuf,
        /// Revision to write (default: the revision the tree was exploded from).
        #[arg(long, value_parser = parse_rev)]
        rev: Option<ckpt_format::Revision>,
    },
    /// Mount the tree read-only over FUSE, served lazily from the mapped image.
    #[command(after_help = exit_codes())]
    Mount {
        /// The image file.
        image: std::path::PathBuf,
        /// Where to mount.
        mountpoint: std::path::PathBuf,
        /// Return once mounted, serving in the background.
        #[arg(long)]
        daemon: bool,
    },
    /// Write an ELF core file of one task, for gdb (docs/EXPORT-CORE.md).
    #[command(name = "export-core", after_help = exit_codes())]
    ExportCore {
        /// The image (`-` for stdin).
        image: String,
        /// The task (default: the first one).
        #[arg(long)]
        pid: Option<i32>,
        /// The core file to write.
        #[arg(short = 'o', long = "output")]
        output: std::path::PathBuf,
    },
}

/// The image's bytes: the mapping for files, everything read for streams, a CRIU dump
/// converted to native-1 (what the model cannot carry is noted on stderr).
fn image_bytes(image: &str) -> Result<Image, Failure> {
    let (img, losses) = Image::open(image)?.into_native()?;
    for l in &losses {
        eprintln!("note: not carried from the CRIU dump: {l}");
    }
    match img {
        Image::Stream(mut r) => {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map_err(|err| Failure::Io {
                what: format!("reading {image}"),
                err,
            })?;
            Ok(Image::Bytes(v))
        }
        other => Ok(other),
    }
}

fn as_slice(img: &Image) -> &[u8] {
    match img {
        Image::Mapped(m) | Image::Chained(m, _) => m,
        Image::Bytes(b) => b,
        Image::Stream(_) | Image::Criu(_) => &[],
    }
}

fn parse_rev(s: &str) -> Result<ckpt_format::Revision, String> {
    ckpt_format::Revision::from_name(s)
        .ok_or_else(|| format!("unknown revision {s:?}: expected native-1, ckpt-v21 or cr-v5"))
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(&h.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

fn main() {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let res = run(cli, &mut out);
    let flushed = out.flush();
    let code = match (res, flushed) {
        (Ok(()), Ok(())) => 0,
        (Ok(()), Err(e)) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        (Ok(()), Err(e)) => {
            eprintln!("ckpt-inspect: cannot write the output: {e}");
            ckpt_inspect::EXIT_IO
        }
        (Err(f), _) => {
            let code = f.exit_code();
            if !matches!(&f, Failure::Io { err, .. } if err.kind() == io::ErrorKind::BrokenPipe) {
                eprintln!("ckpt-inspect: {f}");
            }
            code
        }
    };
    std::process::exit(code);
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let cmd = match (cli.cmd, cli.image) {
        (Some(c), _) => c,
        (None, Some(image)) => Cmd::Show { json: false, image },
        (None, None) => {
            return Err(Failure::Usage(
                "no image given; see `ckpt-inspect --help`".into(),
            ))
        }
    };
    match cmd {
        Cmd::Show { json, image } => {
            let mut img = Image::open(&image)?;
            if let Image::Criu(_) = &img {
                return ckpt_inspect::criu::show(&mut img, json, out);
            }
            let (s, err) = summary::summarise(&mut img);
            // Said on stderr too, every time (also with --json).
            for l in &s.left_out {
                eprintln!(
                    "ckpt-inspect: left out by a restore (captured with --allow-unsupported): {l}"
                );
            }
            let text = if json {
                render::show_json(&s, err.as_ref())
            } else {
                render::show_text(&s, err.as_ref())
            };
            out.write_all(text.as_bytes())?;
            err.map_or(Ok(()), |e| Err(Failure::Image(e)))
        }
        Cmd::Records { json, image } => {
            let mut img = Image::open(&image)?;
            if let Image::Criu(c) = &img {
                return ckpt_inspect::criu::records(c, json, out);
            }
            records::records(&mut img, json, out)
        }
        Cmd::Verify { json, image } => {
            let mut img = Image::open(&image)?;
            verify::run(&mut img, json, out)
        }
        Cmd::Check { json, root, image } => {
            let mut img = Image::open(&image)?;
            ckpt_inspect::check::run(&mut img, json, &root, out)
        }
        Cmd::Convert {
            to,
            lossy,
            target_kernel,
            input,
            output,
            out_pos,
        } => {
            let output = output.or(out_pos).unwrap_or_default();
            convert(to, lossy, target_kernel, &input, &output, out)
        }
        Cmd::Schema { rev } => {
            let revs = match rev {
                Some(r) => vec![r],
                None => ckpt_format::Revision::ALL.to_vec(),
            };
            for (i, r) in revs.into_iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                out.write_all(ckpt_format::schema::schema(r).as_bytes())?;
            }
            Ok(())
        }
        Cmd::Diff { json, a, b } => {
            let ia = Image::open(&a)?;
            let ib = Image::open(&b)?;
            diff::run(ia, ib, json, out)
        }
        Cmd::Mem {
            image,
            pid,
            addr,
            len,
            raw,
            search,
            max,
            json,
        } => {
            let mut img = Image::open(&image)?;
            match (search, addr) {
                (Some(p), _) => mem::run_search(&mut img, pid, &p, max, json, out),
                (None, Some(a)) => mem::run_range(&mut img, pid, a, len, raw, json, out),
                (None, None) => Err(Failure::Usage("give --addr or --search".into())),
            }
        }
        Cmd::Explode { image, dir } => {
            let img = image_bytes(&image)?;
            let r = ckpt_inspect::fsview::explode(as_slice(&img), &dir)
                .map_err(|e| Failure::Negative(e.to_string()))?;
            writeln!(
                out,
                "exploded into {}: {} entries, {} bytes of memory{}",
                dir.display(),
                r.entries,
                r.mem_bytes,
                if r.per_vma_mem.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (one mem file per VMA for {}: addresses beyond this filesystem's file size limit)",
                        r.per_vma_mem.join(", ")
                    )
                }
            ).map_err(|err| Failure::Io {
                what: "writing the report".into(),
                err,
            })
        }
        Cmd::Implode { dir, output, rev } => {
            let r = write_output_file(&output, |w| {
                ckpt_inspect::fsview::implode::implode_to(
                    &dir,
                    w,
                    &ckpt_inspect::fsview::ImplodeOptions { rev },
                )
                .map_err(|e| e.to_string())
            })?;
            writeln!(
                out,
                "wrote {} ({}, {} events)",
                output.display(),
                r.revision,
                r.events
            )
            .map_err(|err| Failure::Io {
                what: "writing the report".into(),
                err,
            })
        }
        Cmd::Mount {
            image,
            mountpoint,
            daemon,
        } => {
            // A CRIU dump is served from its native-1 conversion in a temporary file.
            let mut tmp = None;
            let path = if ckpt_criu::is_criu(&image) {
                let c = ckpt_criu::CriuImage::open(&image)
                    .map_err(ckpt_inspect::source::criu_failure)?;
                let mut t = tempfile::NamedTempFile::new()
                    .map_err(|e| Failure::io("cannot create a temporary file".into(), e))?;
                for l in ckpt_inspect::source::criu_to_native(&c, t.as_file_mut())? {
                    eprintln!("note: not carried from the CRIU dump: {l}");
                }
                let p = t.path().to_path_buf();
                tmp = Some(t);
                p
            } else {
                image.clone()
            };
            let r = ckpt_inspect::fsview::mount(
                &path,
                &mountpoint,
                ckpt_inspect::fsview::MountOptions { daemon },
            )
            .map_err(|e| Failure::Negative(e.to_string()));
            drop(tmp);
            r
        }
        Cmd::ExportCore { image, pid, output } => {
            let img = image_bytes(&image)?;
            let r = write_output_file(&output, |w| {
                ckpt_inspect::core_export::export_core_to(
                    as_slice(&img),
                    ckpt_inspect::core_export::ExportOptions { pid },
                    w,
                )
                .map_err(|e| e.to_string())
            })?;
            writeln!(
                out,
                "wrote {}: task {}, {} thread(s), {} PT_LOAD segment(s) ({} with contents), {} bytes",
                output.display(),
                r.pid,
                r.threads,
                r.loads,
                r.loads_with_data,
                r.bytes
            )
            .map_err(|err| Failure::Io {
                what: "writing the report".into(),
                err,
            })
        }
    }
}

/// Write an output file through `ckpt_format::output::Output` with `f`, then commit it.
/// A failure of the output itself (cannot create, write or rename) is exit 3; any other
/// failure of `f` (a bad tree, a bad image) is exit 1.
fn write_output_file<T>(
    path: &Path,
    f: impl FnOnce(&mut dyn Write) -> Result<T, String>,
) -> Result<T, Failure> {
    let shown = path.display().to_string();
    let mut outf = ckpt_format::output::Output::create(path)
        .map_err(|e| Failure::io(format!("cannot write {shown}"), e))?;
    let mut w = Watch {
        w: &mut outf,
        err: None,
    };
    let r = f(&mut w);
    let failed = w.err.take();
    match (r, failed) {
        (Err(_), Some(e)) => Err(Failure::io(format!("cannot write {shown}"), e)),
        (Err(m), None) => Err(Failure::Negative(m)),
        (Ok(v), _) => {
            outf.commit()
                .map_err(|e| Failure::io(format!("cannot write {shown}"), e))?;
            Ok(v)
        }
    }
}

/// Remembers the first write error of the writer it wraps.
struct Watch<'a> {
    w: &'a mut dyn Write,
    err: Option<io::Error>,
}

impl Write for Watch<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.w.write(b).inspect_err(|e| {
            self.err
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush().inspect_err(|e| {
            self.err
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }
}

fn convert(
    to: ckpt_format::Revision,
    lossy: bool,
    target_kernel: Option<String>,
    input: &str,
    output: &str,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    use ckpt_format::convert::{ConvertOptions, TargetKernel};
    let opts = ConvertOptions {
        to,
        lossy,
        target_kernel: match target_kernel.as_deref() {
            None => TargetKernel::Running,
            Some("keep") => TargetKernel::Keep,
            Some(r) => TargetKernel::Release(r.to_string()),
        },
    };
    let mut img = Image::open(input)?;
    if let Image::Criu(c) = &img {
        // CRIU → native-1 (then, for a legacy target, native-1 → that revision).
        let losses = ckpt_inspect::criu::losses(c)?;
        if !losses.is_empty() && !lossy {
            return Err(Failure::Negative(format!(
                "conversion of the CRIU dump refused (--lossy converts anyway): the model has no record for: {}",
                losses.join("; ")
            )));
        }
        for l in &losses {
            eprintln!("dropped: {l}");
        }
        if to == ckpt_format::Revision::Native1 {
            let c = match img {
                Image::Criu(c) => c,
                _ => unreachable!("matched above"),
            };
            return write_output(output, out, |w| {
                ckpt_inspect::source::criu_to_native(&c, w).map(|_| ())
            });
        }
        img = img.into_native()?.0;
    }
    let total = img.slice().map_or(0, |s| s.len() as u64);
    let pb = ckpt_inspect::progress::Progress::bytes("convert", total);
    let write = |w: &mut dyn Write| -> Result<ckpt_format::convert::ConvertReport, Failure> {
        let w = ProgressWriter { w, pb: &pb, n: 0 };
        let rep = match img {
            Image::Mapped(ref m) => ckpt_format::convert::convert_slice(m, w, &opts),
            Image::Chained(ref m, ref ps) => {
                let slices: Vec<&[u8]> = ps.iter().map(|p| &p[..]).collect();
                ckpt_format::convert::convert_chain(m, &slices, w, &opts)
            }
            Image::Bytes(ref b) => ckpt_format::convert::convert_slice(b, w, &opts),
            Image::Stream(r) => ckpt_format::convert::convert(r, w, &opts),
            Image::Criu(_) => unreachable!("converted to native-1 above"),
        };
        rep.map_err(|e| match e.kind {
            ckpt_format::ErrorKind::Unrepresentable { .. } => Failure::Negative(format!(
                "conversion to {to} refused (--lossy converts anyway): {}",
                e.kind
            )),
            _ => Failure::Image(e),
        })
    };
    let rep = if output == "-" {
        let rep = write(out)?;
        out.flush()?;
        rep
    } else {
        // A new or regular file is replaced through a temporary file; a FIFO or device
        // is written through; a directory is refused (ckpt_format::output).
        let mut outf = ckpt_format::output::Output::create(Path::new(output))
            .map_err(|e| Failure::io(format!("cannot write {output}"), e))?;
        let rep = {
            let mut bw = io::BufWriter::with_capacity(1 << 16, &mut outf);
            let rep = write(&mut bw)?;
            bw.flush()
                .map_err(|e| Failure::io(format!("cannot write {output}"), e))?;
            rep
        };
        outf.commit()
            .map_err(|e| Failure::io(format!("cannot write {output}"), e))?;
        rep
    };
    pb.finish();
    for d in &rep.dropped {
        eprintln!("dropped: {d}");
    }
    for r in &rep.retargeted {
        eprintln!("retargeted: {r}");
    }
    for n in &rep.notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

struct ProgressWriter<'a> {
    w: &'a mut dyn Write,
    pb: &'a ckpt_inspect::progress::Progress,
    n: u64,
}

impl Write for ProgressWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.w.write(buf)?;
        self.n += k as u64;
        self.pb.set(self.n);
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Write `output` (`-` = `out`) as every output is written (ckpt_format::output: a new or
/// regular file replaced through a temporary file, a FIFO or device written through).
fn write_output(
    output: &str,
    out: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> Result<(), Failure>,
) -> Result<(), Failure> {
    if output == "-" {
        write(out)?;
        return out.flush().map_err(Failure::from);
    }
    let mut outf = ckpt_format::output::Output::create(Path::new(output))
        .map_err(|e| Failure::io(format!("cannot write {output}"), e))?;
    write(&mut outf)?;
    outf.commit()
        .map_err(|e| Failure::io(format!("cannot write {output}"), e))
}

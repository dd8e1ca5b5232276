//! Conversion between revisions, through the image model (docs/CONVERT.md).
//!
//! ```no_run
//! use ckpt_format::convert::{convert_slice, ConvertOptions, TargetKernel};
//! use ckpt_format::Revision;
//!
//! let image = std::fs::read("old.img").unwrap();
//! let mut out = Vec::new();
//! let opts = ConvertOptions {
//!     to: Revision::CkptV21,
//!     lossy: false,
//!     target_kernel: TargetKernel::Running,
//! };
//! let report = convert_slice(&image, &mut out, &opts).unwrap();
//! for item in &report.dropped {
//!     eprintln!("dropped: {item}");
//! }
//! ```
//!
//! A legacy target (cr-v5, ckpt-v21) counts what follows before writing it
//! (VMAs per mm, the task tree, the FPU size in the header), so conversion to
//! it reads the input twice: the first pass plans and lists what the target
//! cannot represent (refused unless `lossy`), the second writes. A slice is
//! simply decoded twice; a stream is first copied to a temporary file. Memory
//! stays bounded by the largest record either way.

use crate::error::{Error, ErrorKind, Result};
use crate::input::{Input, SliceInput, StreamInput};
use crate::model::*;
use crate::stream::{EventSink, EventSource, ReadOptions};
use crate::{crv5, v21};

pub use crate::legacy::{Buffered, LegacyRevision, LegacySink, Plan};
pub use crate::model::parse_release;
use std::collections::BTreeSet;
use std::io::{self, Read, Seek, Write};

/// The encoder of legacy revision `rev` with an optional plan (None = dry run).
pub fn legacy_encoder<'w, W: Write + 'w>(
    rev: Revision,
    w: W,
    plan: Option<Plan>,
    lossy: bool,
) -> Option<Box<dyn LegacySink + 'w>> {
    match rev {
        Revision::CrV5 => Some(crv5::Codec::encoder(w, plan, lossy)),
        Revision::CkptV21 => Some(v21::Codec::encoder(w, plan, lossy)),
        Revision::Native1 => None,
    }
}

/// Which kernel the converted image is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TargetKernel {
    /// The running kernel: `/proc/sys/kernel/{osrelease,version}` and the
    /// machine this program was built for (the kexec upgrade case). Default.
    #[default]
    Running,
    /// Keep the source image's kernel fields unchanged.
    Keep,
    /// This release string (`uname -r`); version numbers are parsed from it,
    /// the uts version and machine strings are kept from the source.
    Release(String),
    /// Exactly these fields.
    Explicit(Kernel),
}

/// Options of [`convert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertOptions {
    /// Target revision.
    pub to: Revision,
    /// Convert even when the target cannot represent everything; the report
    /// lists every item dropped or defaulted. Default false: refuse.
    pub lossy: bool,
    /// Kernel to retarget the header to.
    pub target_kernel: TargetKernel,
}

impl ConvertOptions {
    /// Strict conversion to `to` for the running kernel.
    pub fn new(to: Revision) -> Self {
        ConvertOptions {
            to,
            lossy: false,
            target_kernel: TargetKernel::Running,
        }
    }
}

/// What a conversion did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvertReport {
    /// Source revision.
    pub from: Option<Revision>,
    /// Target revision.
    pub to: Option<Revision>,
    /// Events converted.
    pub events: u64,
    /// Items dropped or defaulted because the target cannot represent them (lossy only).
    pub dropped: Vec<String>,
    /// Header fields rewritten for the target (kernel, writer identity).
    pub retargeted: Vec<String>,
    /// Lossless rewrites (zero runs written out as pages ...).
    pub notes: Vec<String>,
}

/// The running kernel, read from `/proc/sys/kernel` (no unsafe `uname(2)`).
pub fn running_kernel() -> Result<Kernel> {
    let read = |p: &str| -> Result<Vec<u8>> {
        let mut v = std::fs::read(p).map_err(|e| Error::io(0, &e))?;
        while v.last() == Some(&b'\n') {
            v.pop();
        }
        Ok(v)
    };
    let release = read("/proc/sys/kernel/osrelease")?;
    let version = read("/proc/sys/kernel/version")?;
    Ok(Kernel::from_uname(
        &release,
        &version,
        std::env::consts::ARCH.as_bytes(),
    ))
}

/// Rewrites the header for the target; everything else passes through.
struct Retarget {
    to: Revision,
    kernel: Option<Kernel>,
    release: Option<String>,
    notes: Vec<String>,
}

impl Retarget {
    fn new(opts: &ConvertOptions) -> Result<Self> {
        let (kernel, release) = match &opts.target_kernel {
            TargetKernel::Keep => (None, None),
            TargetKernel::Running => (Some(running_kernel()?), None),
            TargetKernel::Release(r) => (None, Some(r.clone())),
            TargetKernel::Explicit(k) => (Some(k.clone()), None),
        };
        Ok(Retarget {
            to: opts.to,
            kernel,
            release,
            notes: Vec::new(),
        })
    }

    fn header(&mut self, h: &Header) -> Header {
        let mut h = h.clone();
        let mut notes = Vec::new();
        let mut k = h.kernel.clone();
        if let Some(r) = &self.release {
            let (a, b, c) = parse_release(r);
            k = Kernel {
                major: a,
                minor: b,
                patch: c,
                release: r.as_bytes().to_vec(),
                ..k
            };
        }
        if let Some(nk) = &self.kernel {
            k = nk.clone();
        }
        if k != h.kernel {
            notes.push(format!(
                "kernel {}.{}.{} `{}` -> {}.{}.{} `{}`",
                h.kernel.major,
                h.kernel.minor,
                h.kernel.patch,
                String::from_utf8_lossy(&h.kernel.release),
                k.major,
                k.minor,
                k.patch,
                String::from_utf8_lossy(&k.release)
            ));
            h.kernel = k;
        }
        if self.to != Revision::Native1 && (!h.tool.is_empty() || !h.tool_version.is_empty()) {
            notes.push(format!(
                "writer `{} {}` not recorded (legacy headers have no tool field)",
                h.tool, h.tool_version
            ));
            h.tool.clear();
            h.tool_version.clear();
        }
        // Format-version numbers belong to their own revision.
        let foreign = match self.to {
            Revision::CrV5 => Some("checkpoint_version"),
            Revision::CkptV21 => Some("cr_version"),
            Revision::Native1 => None,
        };
        if let Some(key) = foreign {
            if let Some(v) = h.extras.0.remove(key) {
                notes.push(format!("{key} {v:?} replaced by {}'s own", self.to));
            }
        }
        h.revision = self.to;
        self.notes.extend(notes);
        h
    }
}

/// Drive `src` into `sink`, retargeting the header. Returns the event count.
fn drive(
    src: &mut dyn EventSource,
    sink: &mut dyn EventSink,
    rt: &mut Retarget,
    mut plan: Option<&mut Plan>,
) -> Result<u64> {
    let mut n = 0;
    while let Some(ev) = src.next_event()? {
        if let Event::Header(h) = &ev {
            let h = Event::Header(rt.header(h));
            if let Some(p) = plan.as_deref_mut() {
                p.observe(&h);
            }
            sink.event(&h)?;
        } else {
            if let Some(p) = plan.as_deref_mut() {
                p.observe(&ev);
            }
            sink.event(&ev)?;
        }
        n += 1;
    }
    sink.finish()?;
    Ok(n)
}

fn decoder<'a, I: Input + 'a>(
    rev: Revision,
    inp: I,
    o: ReadOptions,
) -> Result<Box<dyn EventSource + 'a>> {
    match rev {
        Revision::Native1 => Ok(Box::new(crate::native::Decoder::new(inp, o))),
        Revision::CrV5 => crv5::open_stream(inp, o),
        Revision::CkptV21 => v21::open_stream(inp, o),
    }
}

/// The planning pass: a dry run of the target's encoder (lossy, so that it
/// lists every item) skipping the kept ckpt-v21 records `skip`.
fn dry_run<'a>(
    open: &mut impl FnMut(ReadOptions) -> Result<Box<dyn EventSource + 'a>>,
    opts: &ConvertOptions,
    skip: &BTreeSet<usize>,
) -> Result<(Vec<String>, Plan)> {
    let mut rt = Retarget::new(opts)?;
    let mut plan = Plan::default();
    let mut dry = legacy_encoder(opts.to, io::sink(), None, true)
        .ok_or_else(|| Error::invalid(0, "native-1", "a legacy target"))?;
    dry.skip_unknowns(skip.clone());
    // The planning pass skips page checksums; the writing pass checks them.
    let mut src = open(ReadOptions {
        check_page_data: false,
    })?;
    drive(&mut *src, &mut *dry, &mut rt, Some(&mut plan))?;
    Ok((dry.items().to_vec(), plan))
}

/// The kept ckpt-v21 records (indices among the `Unknown` ckpt-v21 events)
/// that a ckpt-v21 image written from the input would not give back
/// (see `v21::kept`): the image is written to a temporary file and read back
/// until every kept record written comes back, in order.
fn v21_not_given_back<'a>(
    open: &mut impl FnMut(ReadOptions) -> Result<Box<dyn EventSource + 'a>>,
    opts: &ConvertOptions,
    plan: &Plan,
) -> Result<BTreeSet<usize>> {
    let mut skip = BTreeSet::new();
    loop {
        let spool = Spool::new()?;
        let (sent, all, clean) = {
            let mut rt = Retarget::new(opts)?;
            let mut enc = legacy_encoder(Revision::CkptV21, &spool.file, Some(plan.clone()), true)
                .ok_or_else(|| Error::invalid(0, "native-1", "a legacy target"))?;
            enc.skip_unknowns(skip.clone());
            let mut tee = v21::kept::Tee::new(&mut *enc, &skip);
            let mut src = open(ReadOptions {
                check_page_data: false,
            })?;
            drive(&mut *src, &mut tee, &mut rt, None)?;
            let clean = tee.no_items();
            (tee.seen, tee.all, clean)
        };
        let reopen = || -> Result<_> {
            let mut f = &spool.file;
            f.rewind().map_err(|e| Error::io(0, &e))?;
            Ok(StreamInput::new(io::BufReader::with_capacity(1 << 16, f)))
        };
        let every = || sent.iter().map(|(i, _)| *i).collect::<Vec<_>>();
        let lost = match v21::kept::given_back(reopen) {
            Ok((back, back_all)) => {
                let lost = v21::kept::not_matched(&sent, &back);
                // The kept records come back, but the image does not (with no
                // item named, the round trip must be exact): they moved it.
                if lost.is_empty() && clean && back_all != all {
                    every()
                } else {
                    lost
                }
            }
            // An image that does not read back: every kept record written is
            // suspect (what the encoder writes itself reads back).
            Err(_) => every(),
        };
        if lost.is_empty() {
            return Ok(skip);
        }
        skip.extend(lost);
    }
}

/// Convert with two passes over a re-openable input (`open` gives a fresh decoder).
fn two_pass<'a>(
    from: Revision,
    mut open: impl FnMut(ReadOptions) -> Result<Box<dyn EventSource + 'a>>,
    out: impl Write,
    opts: &ConvertOptions,
) -> Result<ConvertReport> {
    let none = BTreeSet::new();
    let (mut items, plan) = dry_run(&mut open, opts, &none)?;
    let mut skip = none;
    if opts.to == Revision::CkptV21 && plan.v21_unknowns > 0 {
        skip = v21_not_given_back(&mut open, opts, &plan)?;
        if !skip.is_empty() {
            // Listed where the encoder meets them, as the writing pass will.
            items = dry_run(&mut open, opts, &skip)?.0;
        }
    }
    if !items.is_empty() && !opts.lossy {
        return Err(Error::new(0, ErrorKind::Unrepresentable { items }));
    }
    let mut rt = Retarget::new(opts)?;
    let mut enc = legacy_encoder(opts.to, out, Some(plan), opts.lossy)
        .ok_or_else(|| Error::invalid(0, "native-1", "a legacy target"))?;
    enc.skip_unknowns(skip);
    let mut src = open(ReadOptions::default())?;
    let events = drive(&mut *src, &mut *enc, &mut rt, None)?;
    Ok(ConvertReport {
        from: Some(from),
        to: Some(opts.to),
        events,
        dropped: enc.items().to_vec(),
        retargeted: std::mem::take(&mut rt.notes),
        notes: enc.notes().to_vec(),
    })
}

fn one_pass(
    from: Revision,
    src: &mut dyn EventSource,
    out: impl Write,
    opts: &ConvertOptions,
) -> Result<ConvertReport> {
    let mut rt = Retarget::new(opts)?;
    let mut enc = crate::native::Encoder::new(io::BufWriter::with_capacity(1 << 16, out));
    let events = drive(src, &mut enc, &mut rt, None)?;
    Ok(ConvertReport {
        from: Some(from),
        to: Some(opts.to),
        events,
        dropped: Vec::new(),
        retargeted: rt.notes,
        notes: Vec::new(),
    })
}

/// Convert the image in `input` (an mmap'd file, a buffer) and write it to `out`.
pub fn convert_slice(
    input: &[u8],
    out: impl Write,
    opts: &ConvertOptions,
) -> Result<ConvertReport> {
    let from = crate::detect::detect(input)?.revision()?;
    let open = |o: ReadOptions| -> Result<Box<dyn EventSource + '_>> {
        match from {
            // v21 needs a first pass for the threads (see v21::scan_threads).
            Revision::CkptV21 => v21::open_slice(input, o),
            _ => decoder(from, SliceInput::new(input), o),
        }
    };
    if opts.to == Revision::Native1 {
        let mut src = open(ReadOptions::default())?;
        return one_pass(from, &mut *src, out, opts);
    }
    two_pass(from, open, out, opts)
}

/// Convert a pre-copy increment (`input`, native-1) with its parents (newest first,
/// docs/FORMAT.md "Parent images") into one flat image: pages kept in a parent are
/// written with the parent's contents and the result names no parent.
pub fn convert_chain(
    input: &[u8],
    parents: &[&[u8]],
    out: impl Write,
    opts: &ConvertOptions,
) -> Result<ConvertReport> {
    let from = crate::detect::detect(input)?.revision()?;
    let open = |o: ReadOptions| -> Result<Box<dyn EventSource + '_>> {
        let src = decoder(from, SliceInput::new(input), o)?;
        let index = crate::chain::index_chain(parents)?;
        Ok(Box::new(crate::chain::Flatten::new(src, index)))
    };
    if opts.to == Revision::Native1 {
        let mut src = open(ReadOptions::default())?;
        return one_pass(from, &mut *src, out, opts);
    }
    two_pass(from, open, out, opts)
}

/// Convert the image read from `input` (a file or a pipe) and write it to `out`.
/// For a legacy target the input is first copied to a temporary file, which
/// is removed afterwards.
pub fn convert(
    mut input: impl Read,
    out: impl Write,
    opts: &ConvertOptions,
) -> Result<ConvertReport> {
    let (from, prefix) = crate::sniff(&mut input)?;
    // A v21 input is read twice (threads first), so it is spooled like the
    // input of a legacy target.
    if opts.to == Revision::Native1 && from != Revision::CkptV21 {
        let src = StreamInput::with_prefix(&prefix, input);
        let mut src = decoder(from, src, ReadOptions::default())?;
        return one_pass(from, &mut *src, out, opts);
    }
    let spool = Spool::new()?;
    {
        let mut f = &spool.file;
        f.write_all(&prefix).map_err(|e| Error::io(0, &e))?;
        io::copy(&mut input, &mut f).map_err(|e| Error::io(0, &e))?;
    }
    convert_seekable(&spool.file, out, opts)
}

/// Convert from a seekable input (a file): like [`convert`], but a legacy
/// target reads the input twice in place instead of spooling it.
pub fn convert_seekable<R: Read + Seek>(
    input: R,
    out: impl Write,
    opts: &ConvertOptions,
) -> Result<ConvertReport> {
    let input = std::cell::RefCell::new(input);
    let from = {
        let mut r = input.borrow_mut();
        r.rewind().map_err(|e| Error::io(0, &e))?;
        crate::sniff(&mut *r)?.0
    };
    let open = |o: ReadOptions| -> Result<Box<dyn EventSource + '_>> {
        let reader = || -> Result<_> {
            input.borrow_mut().rewind().map_err(|e| Error::io(0, &e))?;
            Ok(StreamInput::new(io::BufReader::with_capacity(
                1 << 16,
                RefReader(&input),
            )))
        };
        if from == Revision::CkptV21 {
            let table = v21::scan_threads(reader()?)?;
            return v21::open_stream_with_threads(reader()?, o, table);
        }
        decoder(from, reader()?, o)
    };
    if opts.to == Revision::Native1 {
        let mut src = open(ReadOptions::default())?;
        return one_pass(from, &mut *src, out, opts);
    }
    two_pass(from, open, out, opts)
}

/// Reads through a shared `RefCell` so that each pass can rewind the input.
struct RefReader<'a, R>(&'a std::cell::RefCell<R>);

impl<R: Read> Read for RefReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

/// A temporary file removed on drop.
struct Spool {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Spool {
    fn new() -> Result<Spool> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path =
            std::env::temp_dir().join(format!("ckpt-convert-{}-{nanos}.spool", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(0, &e))?;
        Ok(Spool { file, path })
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

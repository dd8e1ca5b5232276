//! Opening an image: a regular file is memory-mapped (zero-copy decoding),
//! anything else (`-` for stdin, a pipe, a character device) is read as a
//! stream with bounded memory. Both give the same events, so every command
//! prints the same output for both.

use crate::Failure;
use ckpt_format::input::StreamInput;
use ckpt_format::{
    crv5, detect, native, open_reader_with, open_slice_with, sniff, v21, EventSource, ReadOptions,
    RecordSource, Revision,
};
use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::rc::Rc;

/// An opened image.
pub enum Image {
    /// A memory-mapped regular file.
    Mapped(memmap2::Mmap),
    /// A mapped pre-copy increment and its parent images, newest first: read flattened
    /// (ckpt_format::chain), pages kept in a parent taken from it.
    Chained(memmap2::Mmap, Vec<memmap2::Mmap>),
    /// Bytes already in memory (tests, empty files).
    Bytes(Vec<u8>),
    /// A stream (stdin, a pipe ...), read once.
    Stream(Box<dyn Read>),
    /// A CRIU image directory or container checkpoint archive (ckpt-criu).
    Criu(Box<ckpt_criu::CriuImage>),
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Image::Mapped(m) => write!(f, "Image::Mapped({} bytes)", m.len()),
            Image::Chained(m, p) => {
                write!(f, "Image::Chained({} bytes, {} parents)", m.len(), p.len())
            }
            Image::Bytes(b) => write!(f, "Image::Bytes({} bytes)", b.len()),
            Image::Stream(_) => f.write_str("Image::Stream"),
            Image::Criu(c) => write!(f, "Image::Criu({})", c.origin.display()),
        }
    }
}

/// Map `file` if it is a non-empty regular file; `None` otherwise.
fn map_file(file: &File) -> io::Result<Option<memmap2::Mmap>> {
    let md = file.metadata()?;
    if !md.is_file() || md.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only and private to this process. If another
    // process truncates the file while we read it, accesses past the new end
    // raise SIGBUS; that is the documented limit of reading images by mmap
    // (as for every mmap-based tool) and cannot corrupt memory.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Some(map))
}

fn stream(r: impl Read + 'static) -> Image {
    Image::Stream(Box::new(io::BufReader::with_capacity(1 << 16, r)))
}

impl Image {
    /// Open `path`; `-` is stdin. Regular files (also stdin redirected from
    /// one) are mapped, everything else is streamed.
    pub fn open(path: &str) -> Result<Image, Failure> {
        if path == "-" {
            use std::os::fd::AsFd;
            if let Ok(fd) = io::stdin().as_fd().try_clone_to_owned() {
                let f = File::from(fd);
                match f.metadata() {
                    Ok(md) if md.is_file() && md.len() == 0 => return Ok(Image::Bytes(Vec::new())),
                    Ok(md) if md.is_file() => {
                        if let Ok(Some(m)) = map_file(&f) {
                            if ckpt_criu::archive::sniff(&m[..m.len().min(512)]).is_some() {
                                // A container checkpoint archive redirected from a file.
                                return criu_reader(io::Cursor::new(&m[..]));
                            }
                            return Ok(Image::Mapped(m));
                        }
                    }
                    _ => {}
                }
            }
            // A pipe: its first bytes say whether it is a container checkpoint
            // archive (tar, tar.gz, tar.zst) or an image; they are read again.
            let mut head = Vec::with_capacity(512);
            let mut stdin = io::stdin();
            (&mut stdin)
                .take(512)
                .read_to_end(&mut head)
                .map_err(|e| Failure::io("cannot read standard input".into(), e))?;
            let mut chained = io::Cursor::new(head.clone()).chain(stdin);
            if ckpt_criu::archive::sniff(&head).is_some() {
                return criu_reader(chained);
            }
            let v21 = matches!(
                ckpt_format::detect::detect(&head),
                Ok(ckpt_format::detect::Detected::Supported(
                    ckpt_format::Revision::CkptV21
                ))
            );
            if v21 {
                // A ckpt-v21 image is read twice (its threads' signal state and the
                // shared queue come after the Task they belong to, docs/CONVERT.md
                // "Order of events"): spooled to an unlinked temporary file and
                // mapped, as `convert` does, so a pipe reads like the file.
                let mut f = tempfile::tempfile()
                    .map_err(|e| Failure::io("cannot create a temporary file".into(), e))?;
                io::copy(&mut chained, &mut f)
                    .map_err(|e| Failure::io("cannot spool standard input".into(), e))?;
                if let Ok(Some(m)) = map_file(&f) {
                    return Ok(Image::Mapped(m));
                }
            }
            return Ok(stream(chained));
        }
        if ckpt_criu::is_criu(std::path::Path::new(path)) {
            return open_criu(path);
        }
        let f = File::open(path).map_err(|e| Failure::io(format!("cannot open {path}"), e))?;
        let md = f
            .metadata()
            .map_err(|e| Failure::io(format!("cannot stat {path}"), e))?;
        if md.is_file() && md.len() == 0 {
            return Ok(Image::Bytes(Vec::new()));
        }
        match map_file(&f) {
            Ok(Some(m)) => {
                let parents = ckpt_format::chain::load_parents(path.as_ref(), &m, |p| {
                    map_file(&File::open(p)?)?
                        .ok_or_else(|| io::Error::other("empty or not a regular file"))
                })
                .map_err(|e| Failure::io(format!("{path}: cannot read its parent image"), e))?;
                if parents.is_empty() {
                    Ok(Image::Mapped(m))
                } else {
                    Ok(Image::Chained(m, parents))
                }
            }
            Ok(None) => Ok(stream(f)),
            Err(e) => Err(Failure::io(format!("cannot map {path}"), e)),
        }
    }

    /// The image bytes when they are all addressable (mapped or in memory).
    pub fn slice(&self) -> Option<&[u8]> {
        match self {
            Image::Mapped(m) | Image::Chained(m, _) => Some(m),
            Image::Bytes(b) => Some(b),
            Image::Stream(_) | Image::Criu(_) => None,
        }
    }

    /// A CRIU dump converted to a native-1 image in an unlinked temporary file, mapped (for
    /// the commands that work on an image's bytes); other images are returned as they are.
    /// The second value names what the model could not carry.
    pub fn into_native(self) -> Result<(Image, Vec<String>), Failure> {
        let Image::Criu(c) = self else {
            return Ok((self, Vec::new()));
        };
        let mut f = tempfile::tempfile()
            .map_err(|e| Failure::io("cannot create a temporary file".into(), e))?;
        let losses = criu_to_native(&c, &mut f)?;
        match map_file(&f) {
            Ok(Some(m)) => Ok((Image::Mapped(m), losses)),
            Ok(None) => Ok((Image::Bytes(Vec::new()), losses)),
            Err(e) => Err(Failure::io("cannot map the converted image".into(), e)),
        }
    }

    /// Turn a stream into addressable bytes by spooling it to an unlinked
    /// temporary file and mapping that (for `diff`, which needs random access).
    pub fn into_addressable(self) -> Result<Image, Failure> {
        match self {
            Image::Stream(mut r) => {
                let mut f = tempfile::tempfile()
                    .map_err(|e| Failure::io("cannot create a temporary file".into(), e))?;
                io::copy(&mut r, &mut f)
                    .map_err(|e| Failure::io("cannot spool the input".into(), e))?;
                match map_file(&f) {
                    Ok(Some(m)) => Ok(Image::Mapped(m)),
                    Ok(None) => Ok(Image::Bytes(Vec::new())),
                    Err(e) => Err(Failure::io("cannot map the spooled input".into(), e)),
                }
            }
            Image::Criu(c) => Ok(Image::Criu(c).into_native()?.0),
            other => Ok(other),
        }
    }

    /// An event decoder over the image. The returned counter holds the bytes
    /// consumed so far (for a slice: its length).
    pub fn events(
        &mut self,
        opts: ReadOptions,
    ) -> Result<(Box<dyn EventSource + '_>, ByteCount), ckpt_format::Error> {
        match self {
            Image::Mapped(m) => {
                let n = ByteCount::fixed(m.len() as u64);
                Ok((open_slice_with(m, opts)?, n))
            }
            Image::Chained(m, ps) => {
                let n = ByteCount::fixed(m.len() as u64);
                let slices: Vec<&[u8]> = ps.iter().map(|p| &p[..]).collect();
                let index = ckpt_format::chain::index_chain(&slices)?;
                let flat = ckpt_format::chain::Flatten::new(open_slice_with(m, opts)?, index);
                Ok((Box::new(flat), n))
            }
            Image::Bytes(b) => {
                let n = ByteCount::fixed(b.len() as u64);
                Ok((open_slice_with(b, opts)?, n))
            }
            Image::Stream(r) => {
                let n = ByteCount::default();
                let cr = CountingReader {
                    inner: r,
                    count: n.clone(),
                };
                Ok((open_reader_with(cr, opts)?, n))
            }
            Image::Criu(c) => {
                let n = ByteCount::fixed(criu_bytes(c));
                Ok((Box::new(ckpt_criu::Decoder::new(c)?), n))
            }
        }
    }

    /// A framing-layer record reader over the image, for every revision,
    /// with the revision recognised.
    pub fn records(
        &mut self,
    ) -> Result<(Box<dyn RecordSource + '_>, Revision), ckpt_format::Error> {
        match self {
            Image::Mapped(m) | Image::Chained(m, _) => records_slice(m),
            Image::Bytes(b) => records_slice(b),
            Image::Stream(r) => records_reader(r),
            Image::Criu(_) => Err(ckpt_format::Error::invalid(
                0,
                "a CRIU dump",
                "a single-file image (CRIU entries are listed by `records` itself)",
            )),
        }
    }
}

/// A container checkpoint archive read from standard input (`-`).
fn criu_reader(r: impl Read) -> Result<Image, Failure> {
    let c =
        ckpt_criu::CriuImage::open_reader(r, std::path::Path::new("-")).map_err(criu_failure)?;
    Ok(Image::Criu(Box::new(c)))
}

/// Open a CRIU image directory or container checkpoint archive.
fn open_criu(path: &str) -> Result<Image, Failure> {
    let c = ckpt_criu::CriuImage::open(std::path::Path::new(path)).map_err(criu_failure)?;
    Ok(Image::Criu(Box::new(c)))
}

/// A ckpt-criu error as a command failure (I/O errors exit 3, the rest 1).
pub fn criu_failure(e: ckpt_criu::CriuError) -> Failure {
    if e.io {
        Failure::Io {
            what: e.file.clone(),
            err: io::Error::other(e.found),
        }
    } else {
        Failure::Image(e.into())
    }
}

/// Total bytes of a CRIU dump's files.
pub(crate) fn criu_bytes(c: &ckpt_criu::CriuImage) -> u64 {
    c.names()
        .map(|n| c.file(n).map_or(0, |b| b.len() as u64))
        .sum()
}

/// Write `c` as a native-1 image to `w`; returns what the model could not carry.
pub fn criu_to_native(
    c: &ckpt_criu::CriuImage,
    w: &mut dyn io::Write,
) -> Result<Vec<String>, Failure> {
    let mut dec = ckpt_criu::Decoder::new(c).map_err(criu_failure)?;
    {
        let bw = io::BufWriter::with_capacity(1 << 16, &mut *w);
        let mut enc = ckpt_format::native::Encoder::new(bw);
        ckpt_format::pump(&mut dec, &mut enc)?;
    }
    w.flush()
        .map_err(|e| Failure::io("cannot write the converted image".into(), e))?;
    Ok(dec.losses().to_vec())
}

/// Framing-layer records of an image in memory, any revision.
pub fn records_slice(
    b: &[u8],
) -> Result<(Box<dyn RecordSource + '_>, Revision), ckpt_format::Error> {
    let rev = detect(b)?.revision()?;
    let src = match rev {
        Revision::Native1 => ckpt_format::open_records_slice(b)?,
        Revision::CrV5 => crv5::open_records(b),
        Revision::CkptV21 => v21::open_records(b),
    };
    Ok((src, rev))
}

/// Framing-layer records of a stream, any revision (memory bounded by the largest record).
pub fn records_reader<'r, R: Read + 'r>(
    mut r: R,
) -> Result<(Box<dyn RecordSource + 'r>, Revision), ckpt_format::Error> {
    let (rev, prefix) = sniff(&mut r)?;
    let inp = StreamInput::with_prefix(&prefix, r);
    let src: Box<dyn RecordSource + 'r> = match rev {
        Revision::Native1 => Box::new(native::RecordReader::new(inp)),
        Revision::CrV5 => Box::new(crv5::Records::new(inp)),
        Revision::CkptV21 => Box::new(v21::Records::new(inp)),
    };
    Ok((src, rev))
}

/// Bytes consumed from an image so far.
#[derive(Clone, Debug, Default)]
pub struct ByteCount(Rc<Cell<u64>>);

impl ByteCount {
    fn fixed(n: u64) -> ByteCount {
        ByteCount(Rc::new(Cell::new(n)))
    }
    /// The count.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

struct CountingReader<R> {
    inner: R,
    count: ByteCount,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let c = &self.count.0;
        c.set(c.get().saturating_add(n as u64));
        Ok(n)
    }
}

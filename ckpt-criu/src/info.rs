//! What a CRIU dump holds beyond the event model, for `ckpt-inspect show`: every file object
//! by kind, sockets, mounts, the UTS names and the container metadata of an archive — the
//! views of checkpointctl's `show` and `inspect --files --sockets --mounts`.

use crate::image::{ImageFile, Result};
use crate::magic;
use crate::pb;
use crate::set::CriuImage;
use serde::Serialize;

/// One socket of the dump.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Socket {
    /// CRIU's file id.
    pub id: u32,
    /// `unix`, `tcp`, `udp`, `inet` (other protocols), `packet`, `netlink`.
    pub kind: String,
    /// Inode number.
    pub ino: u32,
    /// Local address (path for unix sockets; `addr:port` for inet).
    pub local: String,
    /// Peer address or inode (`ino:N` for a unix peer).
    pub peer: String,
    /// Kernel socket state number (`TCP_ESTABLISHED` = 1, listening = 10 ...).
    pub state: u32,
}

/// One mount of a mount namespace.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Mount {
    /// Mount id.
    pub mnt_id: u32,
    /// Parent mount id.
    pub parent: u32,
    /// Where it is mounted.
    pub mountpoint: String,
    /// Mount source.
    pub source: String,
    /// Root inside the source.
    pub root: String,
    /// Options.
    pub options: String,
}

/// Container metadata from `config.dump` and `spec.dump`.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// Image name (`rootfsImageName`).
    pub image: String,
    /// OCI runtime (`runtime`: crun, runc ...).
    pub runtime: String,
    /// Creation time as the engine wrote it.
    pub created: String,
    /// Checkpoint time as the engine wrote it.
    pub checkpointed: String,
    /// `Podman`, `CRI-O` or `unknown`, from the spec's annotations.
    pub engine: String,
    /// Size of `rootfs-diff.tar` in the archive (0 when absent).
    pub rootfs_diff_bytes: u64,
    /// Archive members outside `checkpoint/`.
    pub members: Vec<String>,
}

/// The CRIU-level summary of a dump.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Info {
    /// `img_version` of the inventory.
    pub img_version: u32,
    /// Number of image files.
    pub image_files: usize,
    /// Bytes of page contents (`pages-*.img`).
    pub pages_bytes: u64,
    /// Every file object: (id, description).
    pub files: Vec<(u32, String)>,
    /// Sockets.
    pub sockets: Vec<Socket>,
    /// Mounts of every mount namespace.
    pub mounts: Vec<Mount>,
    /// UTS host and domain names.
    pub hostname: Option<String>,
    /// Container metadata, for archives.
    pub container: Option<ContainerInfo>,
}

fn ipv4(a: &[u32]) -> String {
    match a {
        [x] => std::net::Ipv4Addr::from(x.to_ne_bytes()).to_string(),
        [a, b, c, d] => {
            let mut o = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            std::net::Ipv6Addr::from(o).to_string()
        }
        _ => "?".into(),
    }
}

/// One line describing a CRIU file object (`regular /etc/passwd`, `unix socket ino 123` ...).
pub fn describe_file(f: &pb::FileEntry) -> String {
    if let Some(r) = &f.reg {
        format!("file {}", r.name)
    } else if let Some(p) = &f.pipe {
        format!("pipe {}", p.pipe_id)
    } else if let Some(s) = &f.usk {
        format!(
            "unix socket ino {} ({})",
            s.ino,
            String::from_utf8_lossy(&s.name)
        )
    } else if let Some(s) = &f.isk {
        format!(
            "inet socket ino {} family {} proto {} {}:{}",
            s.ino,
            s.family,
            s.proto,
            ipv4(&s.src_addr),
            s.src_port
        )
    } else if f.psk.is_some() {
        "packet socket".into()
    } else if f.nlsk.is_some() {
        "netlink socket".into()
    } else if let Some(e) = &f.efd {
        format!("eventfd (counter {})", e.counter)
    } else if f.epfd.is_some() {
        "eventpoll".into()
    } else if f.sgfd.is_some() {
        "signalfd".into()
    } else if f.tfd.is_some() {
        "timerfd".into()
    } else if f.ify.is_some() {
        "inotify".into()
    } else if f.ffy.is_some() {
        "fanotify".into()
    } else if f.fifo.is_some() {
        "fifo".into()
    } else if f.tty.is_some() {
        "tty".into()
    } else if f.memfd.is_some() {
        "memfd".into()
    } else if f.nsf.is_some() {
        "namespace file".into()
    } else if f.tunf.is_some() {
        "tun device".into()
    } else if f.bpf.is_some() {
        "bpf map".into()
    } else if f.pidfd.is_some() {
        "pidfd".into()
    } else if f.ext.is_some() {
        "external file".into()
    } else {
        format!("file object of type {}", f.r#type)
    }
}

fn socket(f: &pb::FileEntry) -> Option<Socket> {
    if let Some(s) = &f.usk {
        return Some(Socket {
            id: f.id,
            kind: "unix".into(),
            ino: s.ino,
            local: String::from_utf8_lossy(&s.name).into_owned(),
            peer: if s.peer != 0 {
                format!("ino:{}", s.peer)
            } else {
                String::new()
            },
            state: s.state,
        });
    }
    if let Some(s) = &f.isk {
        let kind = match s.proto {
            6 => "tcp",
            17 => "udp",
            _ => "inet",
        };
        return Some(Socket {
            id: f.id,
            kind: kind.into(),
            ino: s.ino,
            local: format!("{}:{}", ipv4(&s.src_addr), s.src_port),
            peer: format!("{}:{}", ipv4(&s.dst_addr), s.dst_port),
            state: s.state,
        });
    }
    if let Some(s) = &f.psk {
        return Some(Socket {
            id: f.id,
            kind: "packet".into(),
            ino: s.id,
            local: String::new(),
            peer: String::new(),
            state: 0,
        });
    }
    f.nlsk.as_ref().map(|s| Socket {
        id: f.id,
        kind: "netlink".into(),
        ino: s.ino,
        local: String::new(),
        peer: String::new(),
        state: 0,
    })
}

fn container(img: &CriuImage) -> Option<ContainerInfo> {
    let c = img.container.as_ref()?;
    let s = |k: &str| {
        c.config
            .as_ref()
            .and_then(|j| j.get(k))
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string()
    };
    let ann = c.spec.as_ref().and_then(|s| s.get("annotations"));
    let engine = match ann {
        Some(a) if a.get("io.kubernetes.cri-o.Annotations").is_some() => "CRI-O",
        Some(a) if a.get("io.container.manager").and_then(|v| v.as_str()) == Some("libpod") => {
            "Podman"
        }
        _ => "unknown",
    };
    Some(ContainerInfo {
        id: s("id"),
        name: s("name"),
        image: s("rootfsImageName"),
        runtime: s("runtime"),
        created: s("createdTime"),
        checkpointed: s("checkpointedTime"),
        engine: engine.into(),
        rootfs_diff_bytes: c
            .members
            .iter()
            .find(|m| m.0 == "rootfs-diff.tar")
            .map_or(0, |m| m.1),
        members: c.members.iter().map(|m| m.0.clone()).collect(),
    })
}

/// Read the CRIU-level summary of `img`.
pub fn info(img: &CriuImage) -> Result<Info> {
    let inv: pb::InventoryEntry = ImageFile::expect(
        "inventory.img",
        img.need("inventory.img")?,
        magic::INVENTORY,
    )?
    .one()?;
    let mut out = Info {
        img_version: inv.img_version,
        ..Info::default()
    };
    for name in img.names() {
        out.image_files += 1;
        if name.starts_with("pages-") {
            out.pages_bytes += img.file(name).map_or(0, |b| b.len() as u64);
        }
        if name.starts_with("mountpoints-") {
            let b = img.file(name).unwrap_or(&[]);
            for m in ImageFile::expect(name, b, magic::MNTS)?.all::<pb::MntEntry>()? {
                out.mounts.push(Mount {
                    mnt_id: m.mnt_id,
                    parent: m.parent_mnt_id,
                    mountpoint: m.mountpoint,
                    source: m.source,
                    root: m.root,
                    options: m.options,
                });
            }
        }
        if name.starts_with("utsns-") && out.hostname.is_none() {
            let b = img.file(name).unwrap_or(&[]);
            let u: pb::UtsnsEntry = ImageFile::expect(name, b, magic::UTSNS)?.one()?;
            out.hostname = Some(u.nodename);
        }
    }
    if let Some(b) = img.file("files.img") {
        let mut files = ImageFile::expect("files.img", b, magic::FILES)?.all::<pb::FileEntry>()?;
        files.sort_by_key(|f| f.id);
        for f in &files {
            out.files.push((f.id, describe_file(f)));
            if let Some(s) = socket(f) {
                out.sockets.push(s);
            }
        }
    }
    out.container = container(img);
    Ok(out)
}

/// The summary as text, appended to the model's `show` output.
pub fn render_text(i: &Info, losses: &[String]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "CRIU dump: image version {}, {} image files, {} bytes of pages",
        i.img_version, i.image_files, i.pages_bytes
    );
    if let Some(h) = &i.hostname {
        let _ = writeln!(s, "  hostname: {h}");
    }
    if let Some(c) = &i.container {
        let _ = writeln!(s, "container:");
        for (k, v) in [
            ("name", &c.name),
            ("id", &c.id),
            ("image", &c.image),
            ("runtime", &c.runtime),
            ("engine", &c.engine),
            ("created", &c.created),
            ("checkpointed", &c.checkpointed),
        ] {
            let _ = writeln!(s, "  {k}: {v}");
        }
        let _ = writeln!(s, "  rootfs diff: {} bytes", c.rootfs_diff_bytes);
    }
    let _ = writeln!(s, "files ({}):", i.files.len());
    for (id, d) in &i.files {
        let _ = writeln!(s, "  {id:>5}  {d}");
    }
    let _ = writeln!(s, "sockets ({}):", i.sockets.len());
    for k in &i.sockets {
        let _ = writeln!(
            s,
            "  {:>5}  {:<7} ino {:<9} state {:<2} {} {}",
            k.id, k.kind, k.ino, k.state, k.local, k.peer
        );
    }
    let _ = writeln!(s, "mounts ({}):", i.mounts.len());
    for m in &i.mounts {
        let _ = writeln!(
            s,
            "  {:>5} {:>5}  {} {} {} {}",
            m.mnt_id, m.parent, m.mountpoint, m.source, m.root, m.options
        );
    }
    let _ = writeln!(s, "not carried by the model ({}):", losses.len());
    for l in losses {
        let _ = writeln!(s, "  {l}");
    }
    s
}

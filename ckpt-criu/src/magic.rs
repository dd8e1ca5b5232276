//! CRIU's image magic numbers, as a table of our own.
//!
//! Every CRIU image file except `inventory.img`, the raw page files and the raw network dumps
//! starts with two little-endian `u32`s: a common magic ([`COMMON`], or [`SERVICE`] for the
//! stats and irmap-cache files) and the magic of its type. `inventory.img` starts with its type
//! magic alone. The values are facts of CRIU's image format (its `magic.h`, CRIU 4.1.1); the
//! names are the upper-case names crit prints.

/// The first word of every image file with a header, except `inventory.img`.
pub const COMMON: u32 = 0x5456_4319;
/// The first word of the service files (`stats-dump`, `stats-restore`, `irmap-cache`).
pub const SERVICE: u32 = 0x5510_5940;

/// `inventory.img` (no common magic before it).
pub const INVENTORY: u32 = 0x5831_3116;
/// `pstree.img`.
pub const PSTREE: u32 = 0x5027_3030;
/// `core-TID.img`.
pub const CORE: u32 = 0x5505_3847;
/// `mm-PID.img`.
pub const MM: u32 = 0x5749_2820;
/// `pagemap-PID.img` and `pagemap-shmem-ID.img`.
pub const PAGEMAP: u32 = 0x5608_4025;
/// `ids-PID.img`.
pub const IDS: u32 = 0x5443_2030;
/// `fdinfo-N.img`.
pub const FDINFO: u32 = 0x5621_3732;
/// `files.img`.
pub const FILES: u32 = 0x5630_3138;
/// `fs-PID.img`.
pub const FS: u32 = 0x5140_3912;
/// `pipes-data.img`.
pub const PIPES_DATA: u32 = 0x5645_3709;
/// `fifo-data.img`.
pub const FIFO_DATA: u32 = 0x5933_3054;
/// `sk-queues.img`.
pub const SK_QUEUES: u32 = 0x5626_4026;
/// `mountpoints-N.img`.
pub const MNTS: u32 = 0x5556_3928;
/// `utsns-N.img`.
pub const UTSNS: u32 = 0x5447_3203;
/// `memfd.img` (memfd inodes).
pub const MEMFD_INODE: u32 = 0x4845_3499;
/// `stats-dump`, `stats-restore` (after [`SERVICE`]).
pub const STATS: u32 = 0x5709_3306;
/// `ghost-file-N.img`.
pub const GHOST_FILE: u32 = 0x5258_3605;
/// `tcp-stream-N.img`.
pub const TCP_STREAM: u32 = 0x5146_5506;

/// How a type's file is laid out after its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Length-prefixed protobuf entries to the end of the file.
    Entries,
    /// Entries, each followed by raw bytes whose length one of its fields gives
    /// (pipes-data, fifo-data, sk-queues, tcp-stream, ghost files ...).
    EntriesWithPayload,
    /// No header and no entries: raw bytes (pages, network dumps, tarballs).
    Raw,
}

/// One row of the table: magic, crit's name, layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// The type magic (the second word of the file, or the first for inventory).
    pub magic: u32,
    /// crit's upper-case name of the type.
    pub name: &'static str,
    /// What follows the header.
    pub layout: Layout,
}

const fn k(magic: u32, name: &'static str, layout: Layout) -> Kind {
    Kind {
        magic,
        name,
        layout,
    }
}

use Layout::{Entries as E, EntriesWithPayload as P};

/// Every type magic of CRIU 3.17-4.1 image files with a header.
pub const KINDS: &[Kind] = &[
    k(INVENTORY, "INVENTORY", E),
    k(PSTREE, "PSTREE", E),
    k(FDINFO, "FDINFO", E),
    k(FILES, "FILES", E),
    k(PAGEMAP, "PAGEMAP", E),
    k(CORE, "CORE", E),
    k(IDS, "IDS", E),
    k(0x5412_3737, "VMAS", E),
    k(0x5651_3555, "PIPES", E),
    k(PIPES_DATA, "PIPES_DATA", P),
    k(0x5836_4939, "FIFO", E),
    k(FIFO_DATA, "FIFO_DATA", P),
    k(0x5534_4201, "SIGACT", E),
    k(0x5437_3943, "UNIXSK", E),
    k(0x5644_3851, "INETSK", E),
    k(0x6045_4618, "PACKETSK", E),
    k(0x5746_4056, "ITIMERS", E),
    k(0x5260_3957, "POSIX_TIMERS", E),
    k(SK_QUEUES, "SK_QUEUES", P),
    k(UTSNS, "UTSNS", E),
    k(0x5402_3547, "CREDS", E),
    k(0x5311_5007, "IPC_VAR", E),
    k(0x4628_3044, "IPCNS_SHM", P),
    k(0x5545_3737, "IPCNS_MSG", P),
    k(0x5957_3019, "IPCNS_SEM", P),
    k(0x5036_3636, "REG_FILES", E),
    k(0x5925_5641, "EXT_FILES", E),
    k(FS, "FS", E),
    k(MM, "MM", E),
    k(0x5913_3954, "REMAP_FPATH", E),
    k(GHOST_FILE, "GHOST_FILE", P),
    k(TCP_STREAM, "TCP_STREAM", P),
    k(0x4452_3722, "EVENTFD_FILE", E),
    k(0x4502_3858, "EVENTPOLL_FILE", E),
    k(0x4443_3746, "EVENTPOLL_TFD", E),
    k(0x5732_3820, "SIGNALFD", E),
    k(0x4842_4431, "INOTIFY_FILE", E),
    k(0x5456_2009, "INOTIFY_WD", E),
    k(MNTS, "MNTS", E),
    k(0x5737_3951, "NETDEV", E),
    k(0x5593_3752, "NETNS", E),
    k(0x5943_3025, "TTY_FILES", E),
    k(0x5945_3036, "TTY_INFO", E),
    k(0x5941_3026, "TTY_DATA", E),
    k(0x5432_3616, "FILE_LOCKS", E),
    k(0x5711_3925, "RLIMIT", E),
    k(0x5509_6122, "FANOTIFY_FILE", E),
    k(0x5650_6035, "FANOTIFY_MARK", E),
    k(0x5925_5647, "SIGNAL", E),
    k(0x5800_5614, "NETLINK_SK", E),
    k(0x6139_4011, "NS_FILES", E),
    k(0x5714_3751, "TUNFILE", E),
    k(0x5938_3330, "CGROUP", E),
    k(0x5049_3712, "TIMERFD", E),
    k(0x6140_4013, "CPUINFO", E),
    k(0x5547_4906, "USERNS", E),
    k(0x6441_3049, "SECCOMP", E),
    k(0x6734_3323, "BINFMT_MISC", E),
    k(0x4935_3943, "AUTOFS", E),
    k(MEMFD_INODE, "MEMFD_INODE", E),
    k(0x4311_4433, "TIMENS", E),
    k(0x6115_7326, "PIDNS", E),
    k(0x5750_6142, "BPFMAP_FILE", E),
    k(0x6432_4033, "BPFMAP_DATA", P),
    k(0x5942_3047, "APPARMOR", E),
    k(0x5443_5556, "PIDFD", E),
    k(STATS, "STATS", E),
    k(0x5700_4059, "IRMAP_CACHE", E),
];

/// The row of `magic`, if CRIU defines it.
pub fn kind(magic: u32) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.magic == magic)
}

/// File names (or name prefixes) whose contents are raw bytes without a header.
pub fn is_raw_name(name: &str) -> bool {
    name.starts_with("pages-")
        || name.starts_with("ifaddr-")
        || name.starts_with("route-")
        || name.starts_with("route6-")
        || name.starts_with("rule-")
        || name.starts_with("iptables-")
        || name.starts_with("ip6tables-")
        || name.starts_with("nftables-")
        || name.starts_with("tmpfs-")
        || name.starts_with("netns-ct-")
        || name.starts_with("netns-exp-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_are_unique_and_named() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KINDS {
            assert!(seen.insert(k.magic), "{} twice", k.name);
            assert_eq!(kind(k.magic), Some(k));
        }
        assert_eq!(kind(CORE).unwrap().name, "CORE");
        assert_eq!(kind(0x1234_5678), None);
    }
}

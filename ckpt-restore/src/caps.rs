//! Capability sets: the image's (the Task's [`Capabilities`] record) against the
//! caller's, and what a restore may give.
//!
//! [`Capabilities`]: ckpt_format::Capabilities

use ckpt_format::Task;

/// `CAP_SETPCAP`: needed in the effective set to drop from the bounding set.
pub const CAP_SETPCAP: u32 = 8;

/// The five capability sets of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Caps {
    /// Inheritable.
    pub inh: u64,
    /// Permitted.
    pub prm: u64,
    /// Effective.
    pub eff: u64,
    /// Bounding.
    pub bnd: u64,
    /// Ambient.
    pub amb: u64,
}

impl Caps {
    /// The image's sets, when recorded (legacy images have none).
    pub fn of_image(t: &Task) -> Option<Caps> {
        let c = t.records.caps.as_ref()?;
        Some(Caps {
            inh: c.inh,
            prm: c.prm,
            eff: c.eff,
            bnd: c.bnd,
            amb: c.amb,
        })
    }

    /// The calling thread's sets (`/proc/thread-self/status`).
    pub fn own() -> Result<Caps, String> {
        let st = ckpt_sys::procfs::status("thread-self")
            .map_err(|e| format!("reading our capabilities: {e}"))?;
        let get = |k: &str| {
            st.get(k)
                .map(|v| ckpt_sys::procfs::hex_mask(v))
                .ok_or_else(|| format!("no {k} in /proc/thread-self/status"))
        };
        Ok(Caps {
            inh: get("CapInh")?,
            prm: get("CapPrm")?,
            eff: get("CapEff")?,
            bnd: get("CapBnd")?,
            amb: get("CapAmb")?,
        })
    }

    /// Why `self` (an image's sets) cannot be given by a caller holding `ours`; empty when
    /// it can. Never more than the caller has: permitted and effective within our
    /// permitted, inheritable within our permitted and inheritable, bounding within ours
    /// (and dropping from it needs CAP_SETPCAP), ambient within our permitted. The image
    /// must also be consistent (effective within permitted, ambient within permitted and
    /// inheritable), or the kernel would refuse the sets half-way through.
    pub fn refusals(&self, ours: &Caps) -> Vec<String> {
        let mut out = Vec::new();
        let mut extra = |what: &str, bits: u64| {
            if bits != 0 {
                out.push(format!("{what}: {bits:#x}"));
            }
        };
        extra(
            "permitted capabilities the caller lacks",
            self.prm & !ours.prm,
        );
        extra(
            "effective capabilities the caller lacks",
            self.eff & !ours.prm,
        );
        extra(
            "inheritable capabilities the caller lacks",
            self.inh & !(ours.prm | ours.inh),
        );
        extra(
            "bounding-set capabilities the caller lacks",
            self.bnd & !ours.bnd,
        );
        extra(
            "ambient capabilities the caller lacks",
            self.amb & !ours.prm,
        );
        extra(
            "effective capabilities outside the permitted set",
            self.eff & !self.prm,
        );
        extra(
            "ambient capabilities outside the permitted and inheritable sets",
            self.amb & !(self.prm & self.inh),
        );
        if ours.bnd & !self.bnd != 0 && ours.eff & (1 << CAP_SETPCAP) == 0 {
            out.push(format!(
                "the bounding set loses {:#x}, which needs CAP_SETPCAP",
                ours.bnd & !self.bnd
            ));
        }
        out
    }
}

/// The `capset` v3 argument: header (version 0x20080522, pid 0 = the caller) and the two
/// `{effective, permitted, inheritable}` u32 triples (low then high 32 bits), 32 bytes.
pub fn capset_v3(eff: u64, prm: u64, inh: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.extend_from_slice(&0x2008_0522u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for half in [0, 32] {
        for v in [eff, prm, inh] {
            b.extend_from_slice(&((v >> half) as u32).to_le_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_caller_and_consistent() {
        let full = Caps {
            inh: 0,
            prm: (1 << 41) - 1,
            eff: (1 << 41) - 1,
            bnd: (1 << 41) - 1,
            amb: 0,
        };
        let img = Caps {
            inh: 1 << 10,
            prm: 1 << 10 | 1 << 5,
            eff: 1 << 5,
            bnd: full.bnd & !(1 << 22),
            amb: 1 << 10,
        };
        assert!(img.refusals(&full).is_empty());
        assert_eq!(full.refusals(&full), Vec::<String>::new());
        let none = Caps {
            bnd: full.bnd,
            ..Caps::default()
        };
        let r = img.refusals(&none);
        assert!(r
            .iter()
            .any(|m| m.contains("permitted capabilities the caller lacks: 0x420")));
        assert!(r.iter().any(|m| m.contains("needs CAP_SETPCAP")));
        let bad = Caps { eff: 1 << 3, ..img };
        assert!(bad
            .refusals(&full)
            .iter()
            .any(|m| m.contains("outside the permitted set: 0x8")));
        let bad = Caps { amb: 1 << 5, ..img };
        assert!(bad
            .refusals(&full)
            .iter()
            .any(|m| m.contains("ambient capabilities outside")));
        let more = Caps {
            bnd: 1 << 50,
            ..img
        };
        assert!(more
            .refusals(&full)
            .iter()
            .any(|m| m.contains("bounding-set capabilities the caller lacks")));
    }

    #[test]
    fn capset_layout() {
        let b = capset_v3(1 << 33 | 1, 2, 1 << 40);
        assert_eq!(b.len(), 32);
        let w = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!((w(0), w(1)), (0x2008_0522, 0));
        assert_eq!((w(2), w(3), w(4)), (1, 2, 0));
        assert_eq!((w(5), w(6), w(7)), (2, 0, 1 << 8));
    }
}

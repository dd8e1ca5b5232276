//! Small formatting helpers: hex, human sizes, protection bits, UTC time,
//! printable byte strings and aligned text tables.

/// `PROT_*` bits as `rwx` (`-` for a missing bit), or hex when other bits are set.
pub fn prot(p: u32) -> String {
    if p & !7 != 0 {
        return format!("{p:#x}");
    }
    let mut s = String::with_capacity(3);
    s.push(if p & 1 != 0 { 'r' } else { '-' });
    s.push(if p & 2 != 0 { 'w' } else { '-' });
    s.push(if p & 4 != 0 { 'x' } else { '-' });
    s
}

/// Binary-prefixed size: `512 B`, `4.0 KiB`, `1.5 GiB`.
pub fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Bytes as text: UTF-8 shown as is, other bytes and control characters as `\xNN`.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    match std::str::from_utf8(b) {
        Ok(s) => {
            for c in s.chars() {
                if c.is_control() {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push(c);
                }
            }
        }
        Err(_) => {
            for &c in b {
                if (0x20..0x7f).contains(&c) {
                    out.push(c as char);
                } else {
                    out.push_str(&format!("\\x{c:02x}"));
                }
            }
        }
    }
    out
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Column alignment of a [`Table`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right.
    Left,
    /// Pad on the left.
    Right,
}

/// A text table with aligned columns; trailing spaces are trimmed.
#[derive(Clone, Debug)]
pub struct Table {
    head: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headings.
    pub fn new(head: &[(&'static str, Align)]) -> Table {
        Table {
            head: head.to_vec(),
            rows: Vec::new(),
        }
    }
    /// Add a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    /// True when no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    /// Render with `indent` spaces before each line.
    pub fn render(&self, indent: usize, out: &mut String) {
        let n = self.head.len();
        let mut w: Vec<usize> = self.head.iter().map(|(h, _)| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: &mut dyn Iterator<Item = &str>, out: &mut String| {
            let mut s = " ".repeat(indent);
            for (i, c) in cells.enumerate().take(n) {
                let pad = w[i].saturating_sub(c.chars().count());
                if i > 0 {
                    s.push_str("  ");
                }
                match self.head[i].1 {
                    Align::Right => {
                        s.push_str(&" ".repeat(pad));
                        s.push_str(c);
                    }
                    Align::Left => {
                        s.push_str(c);
                        s.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&mut self.head.iter().map(|(h, _)| *h), out);
        for r in &self.rows {
            let mut cells = r
                .iter()
                .map(String::as_str)
                .chain(std::iter::repeat(""))
                .take(n);
            line(&mut cells, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(prot(5), "r-x");
        assert_eq!(prot(0), "---");
        assert_eq!(prot(0x10), "0x10");
        assert_eq!(human(512), "512 B");
        assert_eq!(human(4096), "4.0 KiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(bytes(b"a\tb"), "a\\x09b");
        assert_eq!(bytes(b"\xffok"), "\\xffok");
    }

    #[test]
    fn table_aligns() {
        let mut t = Table::new(&[
            ("A", Align::Left),
            ("NUM", Align::Right),
            ("Z", Align::Left),
        ]);
        t.row(vec!["xx".into(), "1".into(), "end".into()]);
        t.row(vec!["y".into(), "100".into()]);
        let mut s = String::new();
        t.render(2, &mut s);
        assert_eq!(s, "  A   NUM  Z\n  xx    1  end\n  y   100\n");
    }
}

//! Keeping a TCP peer from seeing a reset while the process is down.
//!
//! Between a capture with `--kill` and the restore, the connection has no socket: the
//! kernel would answer the peer's next segment (data, a keep-alive, a retransmission)
//! with RST, and the peer would drop the connection. A [`NetLock`] is an nftables table
//! of our own that drops, in the input hook, every segment of the locked connections
//! (both directions, so loopback peers are covered too). Dropped segments are simply
//! lost to the peer, which retransmits them with its usual back-off; once the restored
//! socket exists and the lock is lifted, a retransmission gets through and the
//! connection goes on. The lock is taken *before* the connection is dumped (so nothing
//! arrives after the dump that the dump misses) and lifted by the restore after the
//! sockets are rebuilt.
//!
//! The table is `inet <name>` (one per capture; [`NetLock::name`]), made with the `nft`
//! program from the nftables package (`nft -f -`), so nothing else in the ruleset is
//! touched and removing it is one `delete table`. `nft` must be installed; without it
//! locking fails, naming it.

use crate::sock::Addr;
use crate::{Result, SysError};
use std::io::Write;
use std::process::{Command, Stdio};

/// An nftables table dropping the segments of some TCP connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLock {
    name: String,
}

fn nft(script: &str, what: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            SysError::io(
                format!("{what}: running nft (the nftables package) to hold TCP peers off"),
                &e,
            )
        })?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(script.as_bytes())
            .map_err(|e| SysError::io(format!("{what}: writing to nft"), &e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| SysError::io(format!("{what}: waiting for nft"), &e))?;
    if !out.status.success() {
        return Err(SysError::other(
            what.to_string(),
            format!(
                "nft failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(())
}

fn ip_match(a: &Addr, dir: &str) -> Option<String> {
    match a {
        Addr::V4(ip, _) => Some(format!("ip {dir}addr {ip}")),
        Addr::V6(ip, _, _, _) => match ip.to_ipv4_mapped() {
            Some(v4) => Some(format!("ip {dir}addr {v4}")),
            None => Some(format!("ip6 {dir}addr {ip}")),
        },
        _ => None,
    }
}

/// The rule text dropping segments from `from` to `to`.
fn rule(from: &Addr, to: &Addr) -> Result<String> {
    let (Some(s), Some(d)) = (ip_match(from, "s"), ip_match(to, "d")) else {
        return Err(SysError::other(
            "netlock",
            format!("{from} -> {to} is not an IPv4/IPv6 connection"),
        ));
    };
    Ok(format!(
        "add rule inet {{T}} input {s} {d} tcp sport {} tcp dport {} drop\n",
        from.port(),
        to.port()
    ))
}

impl NetLock {
    /// A lock named `name` (letters, digits and `_` only), not yet taken.
    pub fn named(name: &str) -> Result<NetLock> {
        if name.is_empty()
            || name.len() > 64
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(SysError::other(
                "netlock",
                format!("{name:?} is not a table name (letters, digits, _)"),
            ));
        }
        Ok(NetLock {
            name: name.to_string(),
        })
    }

    /// The nftables table's name (in family `inet`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Create the table and drop every segment of each connection `(local, remote)`,
    /// in both directions. Taking a lock that exists replaces its rules.
    pub fn lock(&self, conns: &[(Addr, Addr)]) -> Result<()> {
        let mut s = String::new();
        s.push_str("add table inet {T}\ndelete table inet {T}\nadd table inet {T}\n");
        s.push_str(
            "add chain inet {T} input { type filter hook input priority -150 ; policy accept ; }\n",
        );
        for (l, r) in conns {
            s.push_str(&rule(r, l)?);
            s.push_str(&rule(l, r)?);
        }
        nft(&s.replace("{T}", &self.name), "netlock: lock")
    }

    /// Remove the table (and with it every rule). Removing a lock that is not there is
    /// not an error.
    pub fn unlock(&self) -> Result<()> {
        let s = "add table inet {T}\ndelete table inet {T}\n".replace("{T}", &self.name);
        nft(&s, "netlock: unlock")
    }

    /// True when the table exists.
    pub fn exists(&self) -> bool {
        Command::new("nft")
            .args(["list", "table", "inet", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sock, tcp};
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::os::fd::{AsFd, FromRawFd, IntoRawFd};

    fn have_nft() -> bool {
        let ok = Command::new("nft")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok && std::env::var_os("CI").is_some() {
            panic!("nft (nftables) is missing: .ci/run installs it");
        }
        ok
    }

    /// The server end of a connection is dumped and closed (in repair mode) under the
    /// lock; the client writes while there is no server socket — without the lock its
    /// next read would fail with ECONNRESET. Then the connection is rebuilt, the lock
    /// lifted, and the client's bytes arrive (retransmitted) and its reads go on.
    /// Move the server end of a fresh loopback connection to a new socket; the client
    /// writes while no server socket exists. Returns the client's read result after the
    /// move (what the server answered, or the error).
    fn move_with_client_writing(lock: Option<&NetLock>) -> std::io::Result<Vec<u8>> {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        drop(l);
        let local = sock::local_addr(server.as_fd()).unwrap();
        let remote = sock::peer_addr(server.as_fd()).unwrap().unwrap();
        if let Some(lock) = lock {
            lock.lock(&[(local.clone(), remote.clone())]).unwrap();
            assert!(lock.exists());
        }
        tcp::repair_on(server.as_fd()).unwrap();
        let c = tcp::dump(server.as_fd()).unwrap();
        drop(server);
        // No socket for this connection now: the client's segment is dropped, or reset.
        client.write_all(b"sent-while-down").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let fresh = sock::socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        tcp::restore(fresh.as_fd(), &c, &local, &remote).unwrap();
        tcp::finish(fresh.as_fd(), &c).unwrap();
        if let Some(lock) = lock {
            lock.unlock().unwrap();
            assert!(!lock.exists());
        }
        // SAFETY: a connected TCP socket we own.
        let mut server = unsafe { TcpStream::from_raw_fd(fresh.into_raw_fd()) };
        let t = Some(std::time::Duration::from_secs(20));
        server.set_read_timeout(t).unwrap();
        client.set_read_timeout(t).unwrap();
        if lock.is_some() {
            let mut got = [0u8; 15];
            server.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"sent-while-down");
        }
        let _ = server.write_all(b"answer");
        let mut a = [0u8; 6];
        client.read_exact(&mut a)?;
        Ok(a.to_vec())
    }

    /// The server end of a connection is dumped and closed (in repair mode) under the
    /// lock; the client writes while there is no server socket. Then the connection is
    /// rebuilt, the lock lifted, the client's bytes arrive (retransmitted) and it reads
    /// the answer. Without the lock the same sequence resets the client.
    #[test]
    fn peer_sees_no_reset_while_the_socket_is_gone() {
        if !have_nft() {
            eprintln!("skipped: nft not installed");
            return;
        }
        let lock = NetLock::named(&format!("ckpt_test_{}", std::process::id())).unwrap();
        assert_eq!(move_with_client_writing(Some(&lock)).unwrap(), b"answer");
        let e = move_with_client_writing(None).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
}

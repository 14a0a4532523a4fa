//! Two network namespaces joined by a pair of TUN devices, for `ip-link`.
//!
//! `udp-relay` can only impair UDP, so RTMP (TCP) could not cross the link SRT crossed.
//! Here each namespace gets one TUN device; whatever the kernel routes into one device
//! comes out of the driver's file descriptor as a raw IP packet, and the driver writes
//! it into the other device (through an [`crate::impair::Impairment`]). Programs in the
//! two namespaces then talk over plain IP, TCP or UDP alike, across one impaired link.
//!
//! The namespaces and addresses are set up with iproute2 (`ip netns`, `ip -n NS ...`),
//! which every machine that can run this has; only the TUN device needs a syscall of our
//! own (an ioctl that iproute2 cannot make for us, since the device must be bound to our
//! file descriptor). A [`Link`] deletes its namespaces when dropped; the TUN devices go
//! with their file descriptors.

// The crate denies unsafe code; the two syscalls here have no wrapper in std, and
// tokio's registration of a raw descriptor is unsafe.
#![allow(unsafe_code)]

use std::{
    fs::{File, OpenOptions},
    io,
    os::{fd::AsRawFd, unix::fs::OpenOptionsExt},
    path::Path,
    process::Command,
};

/// Linux's IFNAMSIZ, including the terminating NUL.
const IFNAMSIZ: usize = 16;
/// From <linux/if_tun.h>: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUN_PATH: &str = "/dev/net/tun";

/// The two ends' addresses: one /30, so that each end routes the other's address (and
/// nothing else) into its device.
pub const ADDR_A: &str = "10.77.0.1";
pub const ADDR_B: &str = "10.77.0.2";
const PREFIX: u8 = 30;
/// Ethernet's MTU, so that TCP segments and SRT's 1316-byte payloads are sized as on a
/// real contribution link.
pub const MTU: usize = 1500;

/// Why the link could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    #[error("ip-link needs root (CAP_NET_ADMIN) to create namespaces and TUN devices")]
    NotRoot,
    #[error("{TUN_PATH} is unavailable ({0}); load the tun module (modprobe tun)")]
    NoTun(#[source] io::Error),
    #[error(
        "`ip netns` is unavailable: {0} (install iproute2; the kernel needs network namespaces)"
    )]
    NoIpNetns(String),
    #[error("{0:?} is not a usable name: 1 to 15 letters, digits, '-', '_' or '.'")]
    BadName(String),
    #[error("the two namespaces need different names, both are {0:?}")]
    SameName(String),
    #[error("namespace {0} exists already (left by an ip-link killed hard?); remove it with `ip netns del {0}`")]
    Exists(String),
    #[error("creating the TUN device {name}: {source}")]
    Tun {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("entering namespace {name}: {source}")]
    Enter {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("`ip {args}` failed: {detail}")]
    Ip { args: String, detail: String },
}

/// A namespace or interface name as the kernel accepts it (and as `ip` parses it
/// without surprises). The device in each namespace takes the namespace's name, so one
/// rule serves both.
pub fn check_name(name: &str) -> Result<(), NetnsError> {
    let ok = !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NetnsError::BadName(name.to_string()))
    }
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the rest of the
/// union is padding, 24 bytes on every 64-bit Linux; 40 in all is the struct's size).
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn ifreq(name: &str, flags: libc::c_short) -> Result<IfReq, NetnsError> {
    check_name(name)?;
    let mut req = IfReq {
        name: [0; IFNAMSIZ],
        flags,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    Ok(req)
}

/// Opens a new TUN device called `name` in the current (root) namespace: one raw IP
/// packet per read and per write, no packet-information header, non-blocking.
pub fn open_tun(name: &str) -> Result<File, NetnsError> {
    let mut req = ifreq(name, IFF_TUN | IFF_NO_PI)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(TUN_PATH)
        .map_err(NetnsError::NoTun)?;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` is one, laid out as
    // the kernel's, and outlives the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(NetnsError::Tun {
            name: name.to_string(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(file)
}

/// A TUN device's file descriptor registered with tokio's reactor (inside a runtime).
pub fn async_tun(tun: File) -> io::Result<tokio::io::unix::AsyncFd<File>> {
    // SAFETY: the `File` owns a valid descriptor, and the `AsyncFd` owns the `File`, so
    // nothing can close or replace the descriptor while it is registered.
    unsafe { tokio::io::unix::AsyncFd::register(tun) }.map_err(|e| e.into_parts().1)
}

fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let failed = |detail: String| NetnsError::Ip {
        args: args.join(" "),
        detail,
    };
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The names `ip netns list` prints, one per line, each possibly followed by
/// " (id: N)".
pub fn parse_netns_list(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// Refuses early, with the reason, on a machine where the link cannot work.
pub fn preflight(names: [&str; 2]) -> Result<Vec<String>, NetnsError> {
    for n in names {
        check_name(n)?;
    }
    if names[0] == names[1] {
        return Err(NetnsError::SameName(names[0].to_string()));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NetnsError::NotRoot);
    }
    if !Path::new(TUN_PATH).exists() {
        return Err(NetnsError::NoTun(io::ErrorKind::NotFound.into()));
    }
    let list = ip(&["netns", "list"]).map_err(|e| NetnsError::NoIpNetns(e.to_string()))?;
    let existing: Vec<String> = parse_netns_list(&list)
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(n) = names.iter().find(|n| existing.iter().any(|e| e == *n)) {
        return Err(NetnsError::Exists(n.to_string()));
    }
    Ok(existing)
}

/// The two namespaces and their TUN devices. Dropping it deletes the namespaces.
#[derive(Debug)]
pub struct Link {
    pub names: [String; 2],
    /// The TUN devices' file descriptors, in `names` order.
    pub tun: [File; 2],
    /// Namespaces created so far (so that a half-built link is still cleaned up).
    created: Vec<String>,
}

impl Link {
    /// Creates namespace `a` with 10.77.0.1/30 and `b` with 10.77.0.2/30, each on a TUN
    /// device named after its namespace, MTU 1500, and `lo` up in both.
    pub fn create(a: &str, b: &str) -> Result<Link, NetnsError> {
        preflight([a, b])?;
        let mut tun = Vec::with_capacity(2);
        let mut created = Vec::new();
        let result = (|| {
            for (name, addr) in [(a, ADDR_A), (b, ADDR_B)] {
                ip(&["netns", "add", name])?;
                created.push(name.to_string());
                // The device is made in the root namespace (our file descriptor is bound
                // to it there) and then moved; it keeps the binding.
                tun.push(open_tun(name)?);
                ip(&["link", "set", name, "netns", name])?;
                let cidr = format!("{addr}/{PREFIX}");
                let mtu = MTU.to_string();
                ip(&["-n", name, "addr", "add", &cidr, "dev", name])?;
                ip(&["-n", name, "link", "set", name, "mtu", &mtu, "up"])?;
                ip(&["-n", name, "link", "set", "lo", "up"])?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                let [ta, tb]: [File; 2] = tun.try_into().expect("two devices");
                Ok(Link {
                    names: [a.to_string(), b.to_string()],
                    tun: [ta, tb],
                    created,
                })
            }
            Err(e) => {
                drop(tun);
                delete(&created);
                Err(e)
            }
        }
    }
}

/// Moves the calling thread (only) into namespace `name`: the sockets it opens and the
/// processes it starts from then on live there. Tests use it to run a server and its
/// clients on either side of a [`Link`].
pub fn enter(name: &str) -> Result<(), NetnsError> {
    check_name(name)?;
    let err = |source| NetnsError::Enter {
        name: name.to_string(),
        source,
    };
    let ns = File::open(Path::new("/run/netns").join(name)).map_err(err)?;
    // SAFETY: a namespace file descriptor that stays open across the call;
    // CLONE_NEWNET with setns moves the calling thread only.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

fn delete(names: &[String]) {
    for n in names {
        // Nothing useful to do if it fails: the name is in the error of the next run.
        let _ = ip(&["netns", "del", n]);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        delete(&self.created);
    }
}

/// The IP version and total length an IP packet announces, for the driver's sanity
/// check: a TUN read is exactly one packet, so anything else is a bug worth counting.
pub fn ip_header(packet: &[u8]) -> Option<(u8, usize)> {
    let first = *packet.first()?;
    match first >> 4 {
        4 if packet.len() >= 20 => Some((4, u16::from_be_bytes([packet[2], packet[3]]) as usize)),
        6 if packet.len() >= 40 => {
            Some((6, 40 + u16::from_be_bytes([packet[4], packet[5]]) as usize))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kernel_accepts() {
        for good in ["stl-a", "b", "ns_1.2", "fifteen-chars-x"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "sixteen-chars-xx", "a b", "a/b", "..", "é"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ifreq_is_laid_out_as_the_kernels() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        let r = ifreq("stl-a", IFF_TUN | IFF_NO_PI).expect("valid");
        assert_eq!(&r.name[..6], b"stl-a\0");
        assert_eq!(r.flags, 0x1001);
        assert!(ifreq("x".repeat(16).as_str(), 0).is_err());
    }

    #[test]
    fn netns_list_with_and_without_ids() {
        let text = "stl-b (id: 1)\nstl-a (id: 0)\nother\n\n";
        assert_eq!(parse_netns_list(text), ["stl-b", "stl-a", "other"]);
    }

    #[test]
    fn ip_headers() {
        let mut v4 = [0u8; 28];
        v4[0] = 0x45;
        v4[2..4].copy_from_slice(&28u16.to_be_bytes());
        assert_eq!(ip_header(&v4), Some((4, 28)));
        let mut v6 = [0u8; 48];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(ip_header(&v6), Some((6, 48)));
        assert_eq!(ip_header(&v4[..10]), None);
        assert_eq!(ip_header(&[0x20; 40]), None);
        assert_eq!(ip_header(&[]), None);
    }
}

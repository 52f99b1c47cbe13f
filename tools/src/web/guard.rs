//! The SSRF policy: which URLs and which destination addresses the web tools may reach.
//!
//! [`SsrfPolicy`] checks a URL before anything is sent ([`SsrfPolicy::parse_url`],
//! [`SsrfPolicy::check_url`]) and judges every address a hostname resolves to
//! ([`SsrfPolicy::check_ip`]). [`classify`] says why an address is refused, or `None` for a
//! public address. The policy refuses:
//!
//! - schemes other than `http` and `https`, and URLs with user info (`http://user@host/`);
//! - loopback, private (10/8, 172.16/12, 192.168/16), shared CGNAT (100.64/10), link-local
//!   (169.254/16, fe80::/10), unique-local (fc00::/7), site-local (fec0::/10), multicast,
//!   broadcast, unspecified (`0.0.0.0`, `::`), "this network" (0/8), documentation,
//!   benchmarking and reserved ranges, and the cloud metadata addresses
//!   (169.254.169.254, fd00:ec2::254, 168.63.129.16);
//! - IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, the deprecated
//!   IPv4-compatible `::a.b.c.d`, SIIT `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::/96` and 6to4
//!   `2002::/16`) are judged as the IPv4 address they carry (IPv4-compatible and SIIT forms
//!   are refused even when that address is public); Teredo (`2001::/32`) and local-use NAT64
//!   (`64:ff9b:1::/48`) are refused outright; any IPv6 address outside global unicast
//!   `2000::/3` is refused.
//!
//! Odd IPv4 spellings (`2130706433`, `0177.0.0.1`, `0x7f.0.0.1`, `127.1`) need no special
//! case: the WHATWG URL parser normalises them to an IPv4 host, which is then judged.
//!
//! It also refuses this host's own interface addresses (a public one included:
//! [`local_addresses`]), the ranges of an optional deny-list ([`SsrfPolicy::deny_cidr`]), and
//! public hosts on ports other than 80, 443, 8080 and 8443 ([`SsrfPolicy::allow_ports`]).
//!
//! An allow-list ([`SsrfPolicy::allow_host`]) admits named internal hosts, optionally on one
//! port only: `"127.0.0.1:8080"`, `"[::1]:3000"`, `"intranet.example"`.
//!
//! ```
//! use catena_tools::{classify, AddressClass, SsrfPolicy};
//!
//! let policy = SsrfPolicy::new().allow_host("127.0.0.1:8080");
//! assert!(policy.parse_url("http://127.0.0.1:8080/health").is_ok());
//! assert!(policy.parse_url("http://127.0.0.1:8081/").is_err());
//! assert!(policy.parse_url("http://0x7f.1/").is_err());
//! assert!(policy.parse_url("file:///etc/passwd").is_err());
//! assert_eq!(classify("169.254.169.254".parse().unwrap()), Some(AddressClass::Metadata));
//! assert_eq!(classify("93.184.216.34".parse().unwrap()), None);
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use reqwest::Url;

/// Why an address is not a public destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// `0.0.0.0` or `::`.
    Unspecified,
    /// 0.0.0.0/8, "this network".
    ThisNetwork,
    /// 127.0.0.0/8 or `::1`.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddressSpace,
    /// 169.254/16 or fe80::/10.
    LinkLocal,
    /// A cloud metadata endpoint: 169.254.169.254, fd00:ec2::254, 168.63.129.16.
    Metadata,
    /// 224/4 or ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15.
    Benchmarking,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10 (deprecated).
    SiteLocal,
    /// Reserved or special-purpose: 240/4, 192.0.0/24, 192.88.99/24, IPv6 outside 2000::/3,
    /// Teredo, 2001::/23, deprecated IPv4-compatible and SIIT forms.
    Reserved,
    /// An address of one of this host's own network interfaces (a public one included: a
    /// service bound to all interfaces answers on it).
    LocalInterface,
    /// In a range the policy denies ([`SsrfPolicy::deny_cidr`]).
    Denied,
}

impl AddressClass {
    /// A short description, as used in refusal messages.
    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Unspecified => "unspecified",
            AddressClass::ThisNetwork => "\"this network\" (0.0.0.0/8)",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::SharedAddressSpace => "shared address space (CGNAT)",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Metadata => "a cloud metadata endpoint",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "reserved for documentation",
            AddressClass::Benchmarking => "reserved for benchmarking",
            AddressClass::UniqueLocal => "unique-local",
            AddressClass::SiteLocal => "site-local",
            AddressClass::Reserved => "reserved or special-purpose",
            AddressClass::LocalInterface => "an address of this host",
            AddressClass::Denied => "in a denied range",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

const METADATA_V4: [Ipv4Addr; 2] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(168, 63, 129, 16),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

fn in_v4(ip: u32, base: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    ip & mask == u32::from_be_bytes(base) & mask
}

fn in_v6(ip: u128, base: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    ip & mask == u128::from(base) & mask
}

/// Classifies an IPv4 address; `None` means public.
pub(crate) fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let n = u32::from(ip);
    let class = if METADATA_V4.contains(&ip) {
        AddressClass::Metadata
    } else if n == 0 {
        AddressClass::Unspecified
    } else if in_v4(n, [0, 0, 0, 0], 8) {
        AddressClass::ThisNetwork
    } else if in_v4(n, [127, 0, 0, 0], 8) {
        AddressClass::Loopback
    } else if in_v4(n, [10, 0, 0, 0], 8)
        || in_v4(n, [172, 16, 0, 0], 12)
        || in_v4(n, [192, 168, 0, 0], 16)
    {
        AddressClass::Private
    } else if in_v4(n, [100, 64, 0, 0], 10) {
        AddressClass::SharedAddressSpace
    } else if in_v4(n, [169, 254, 0, 0], 16) {
        AddressClass::LinkLocal
    } else if in_v4(n, [192, 0, 2, 0], 24)
        || in_v4(n, [198, 51, 100, 0], 24)
        || in_v4(n, [203, 0, 113, 0], 24)
    {
        AddressClass::Documentation
    } else if in_v4(n, [198, 18, 0, 0], 15) {
        AddressClass::Benchmarking
    } else if n == u32::MAX {
        AddressClass::Broadcast
    } else if in_v4(n, [224, 0, 0, 0], 4) {
        AddressClass::Multicast
    } else if in_v4(n, [240, 0, 0, 0], 4)
        || in_v4(n, [192, 0, 0, 0], 24)
        || in_v4(n, [192, 88, 99, 0], 24)
    {
        AddressClass::Reserved
    } else {
        return None;
    };
    Some(class)
}

fn low_v4(n: u128) -> Ipv4Addr {
    Ipv4Addr::from((n & 0xffff_ffff) as u32)
}

/// Classifies an IPv6 address; `None` means public. Forms that embed an IPv4 address are
/// judged by it (see the [module docs](self)).
pub(crate) fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let n = u128::from(ip);
    if ip == METADATA_V6 {
        return Some(AddressClass::Metadata);
    }
    if n == 0 {
        return Some(AddressClass::Unspecified);
    }
    if n == 1 {
        return Some(AddressClass::Loopback);
    }
    // IPv4-mapped ::ffff:a.b.c.d: a dual-stack socket connects to the IPv4 address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    // Deprecated IPv4-compatible ::a.b.c.d and SIIT ::ffff:0:a.b.c.d: no legitimate
    // destination; report the embedded address's class when it has one.
    if n >> 32 == 0 || n >> 32 == 0xffff_0000 {
        return Some(classify_v4(low_v4(n)).unwrap_or(AddressClass::Reserved));
    }
    let seg = ip.segments();
    // NAT64 well-known prefix 64:ff9b::/96 reaches the embedded IPv4 address.
    if in_v6(n, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(low_v4(n));
    }
    if in_v6(n, Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48) {
        return Some(AddressClass::Reserved);
    }
    // 6to4 2002:AABB:CCDD::/48 reaches AA.BB.CC.DD.
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::from((u32::from(seg[1]) << 16) | u32::from(seg[2]));
        return classify_v4(v4);
    }
    let class = if in_v6(n, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32)
        || in_v6(n, Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20)
    {
        AddressClass::Documentation
    } else if in_v6(n, Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23) {
        // IETF protocol assignments, Teredo (2001::/32) included.
        AddressClass::Reserved
    } else if in_v6(n, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
        AddressClass::UniqueLocal
    } else if in_v6(n, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
        AddressClass::LinkLocal
    } else if in_v6(n, Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10) {
        AddressClass::SiteLocal
    } else if in_v6(n, Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8) {
        AddressClass::Multicast
    } else if !in_v6(n, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        AddressClass::Reserved
    } else {
        return None;
    };
    Some(class)
}

/// Classifies an address; `None` means it is a public destination.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Why the guard refused a request. Every refusal happens before a connection to the
/// refused destination is opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The URL does not parse.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The scheme is not `http` or `https`.
    #[error("scheme `{0}` is not allowed; use http or https")]
    Scheme(String),
    /// The URL carries a user name or password.
    #[error("URLs with a user name or password are not allowed")]
    UserInfo,
    /// The URL has no host.
    #[error("the URL has no host")]
    MissingHost,
    /// The destination address is not public.
    #[error("host {host} is address {addr}, which is {class}")]
    Blocked {
        /// The host as written in the URL.
        host: String,
        /// The address refused.
        addr: IpAddr,
        /// Why.
        class: AddressClass,
    },
    /// Every address the host resolved to is refused (or it resolved to none).
    #[error("{}", no_allowed_address(host, refused))]
    NoAllowedAddress {
        /// The host name.
        host: String,
        /// The refused addresses, with their classes.
        refused: Vec<(IpAddr, AddressClass)>,
    },
    /// The host is allow-listed, but not on this port.
    #[error("host {host} is allow-listed, but not on port {port}")]
    PortNotAllowed {
        /// The host.
        host: String,
        /// The port asked for.
        port: u16,
    },
    /// A public host on a port outside the policy's ports ([`SsrfPolicy::allow_ports`]).
    #[error("port {port} of {host} is not allowed; public hosts are reached on ports {allowed}")]
    Port {
        /// The host.
        host: String,
        /// The port asked for.
        port: u16,
        /// The ports allowed, comma separated.
        allowed: String,
    },
    /// A redirect pointed somewhere refused.
    #[error("redirect to {to} refused: {reason}")]
    Redirect {
        /// Where the redirect pointed.
        to: String,
        /// Why that was refused.
        reason: Box<Refusal>,
    },
    /// More redirects than allowed.
    #[error("more than {max} redirects")]
    TooManyRedirects {
        /// The limit.
        max: usize,
    },
}

impl Refusal {
    /// Whether the refusal is about the URL the caller gave (a model should pick another
    /// URL), as opposed to where it led (DNS answers, redirects).
    pub fn is_url_problem(&self) -> bool {
        matches!(
            self,
            Refusal::InvalidUrl(_)
                | Refusal::Scheme(_)
                | Refusal::UserInfo
                | Refusal::MissingHost
                | Refusal::Blocked { .. }
                | Refusal::PortNotAllowed { .. }
                | Refusal::Port { .. }
        )
    }
}

/// The message of [`Refusal::NoAllowedAddress`].
fn no_allowed_address(host: &str, refused: &[(IpAddr, AddressClass)]) -> String {
    match refused.first() {
        Some((addr, class)) => {
            format!("host {host} resolves only to non-public addresses ({addr} is {class})")
        }
        None => format!("host {host} resolved to no address"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowEntry {
    /// Normalised host: lower-case, IPs in canonical form without brackets, no trailing dot.
    host: String,
    port: Option<u16>,
}

/// Normalises a host for comparison: lower-case, no brackets, no trailing dot.
fn norm_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn parse_allow_entry(entry: &str) -> Option<AllowEntry> {
    let entry = entry.trim();
    let (host_part, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (format!("[{inside}]"), port)
    } else {
        match entry.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.parse::<u16>().ok()?)),
            None => (entry.to_owned(), None),
        }
    };
    // Let the URL parser normalise the host the same way it normalises request URLs.
    let url = Url::parse(&format!("http://{host_part}/")).ok()?;
    let host = norm_host(url.host_str()?);
    if host.is_empty() {
        return None;
    }
    Some(AllowEntry { host, port })
}

/// An IP-literal host (`1.2.3.4` or `[::1]`), as `Url::host_str` writes it.
fn parse_ip_host(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    host.parse::<IpAddr>().ok()
}

/// The ports public hosts are reached on unless [`SsrfPolicy::allow_ports`] says otherwise.
pub const DEFAULT_PORTS: [u16; 4] = [80, 443, 8080, 8443];

/// Which URLs and destination addresses the web tools may reach. See the
/// [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct SsrfPolicy {
    allow: Vec<AllowEntry>,
    /// Set when an allow-list entry did not parse; kept for `Debug` and logs.
    rejected_entries: Vec<String>,
    /// Ranges refused on top of the non-public ones.
    denied: Vec<(IpAddr, u8)>,
    /// A deny entry did not parse: every address is refused (fail closed).
    deny_everything: bool,
    /// The ports of public hosts; `None`: [`DEFAULT_PORTS`]; empty: any port.
    ports: Option<Vec<u16>>,
    /// This host's addresses; `None`: read from the system once ([`local_addresses`]).
    local: Option<Vec<IpAddr>>,
}

/// The addresses of this host's network interfaces, read once (on Linux from
/// `/proc/net/fib_trie` and `/proc/net/if_inet6`; empty elsewhere or when unreadable).
pub fn local_addresses() -> &'static [IpAddr] {
    static LOCAL: std::sync::OnceLock<Vec<IpAddr>> = std::sync::OnceLock::new();
    LOCAL.get_or_init(|| {
        let mut out = Vec::new();
        if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
            let mut last: Option<Ipv4Addr> = None;
            for line in trie.lines() {
                let t = line.trim();
                if let Some(addr) = t.strip_prefix("|-- ") {
                    last = addr.trim().parse().ok();
                } else if t.contains("/32 host LOCAL") {
                    if let Some(a) = last {
                        out.push(IpAddr::V4(a));
                    }
                }
            }
        }
        if let Ok(v6) = std::fs::read_to_string("/proc/net/if_inet6") {
            for line in v6.lines() {
                let hex = line.split_whitespace().next().unwrap_or_default();
                if let Ok(n) = u128::from_str_radix(hex, 16) {
                    if hex.len() == 32 {
                        out.push(IpAddr::V6(Ipv6Addr::from(n)));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    })
}

/// Parses `a.b.c.d/n` or `v6::/n` (a bare address is a /32 or /128).
fn parse_cidr(entry: &str) -> Option<(IpAddr, u8)> {
    let entry = entry.trim();
    let (addr, prefix) = match entry.split_once('/') {
        Some((a, p)) => (
            a.trim().parse::<IpAddr>().ok()?,
            Some(p.trim().parse::<u8>().ok()?),
        ),
        None => (entry.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((addr, prefix))
}

fn in_cidr(ip: IpAddr, (base, prefix): (IpAddr, u8)) -> bool {
    match (ip, base) {
        (IpAddr::V4(ip), IpAddr::V4(base)) => {
            in_v4(u32::from(ip), base.octets(), u32::from(prefix))
        }
        (IpAddr::V6(ip), IpAddr::V6(base)) => in_v6(u128::from(ip), base, u32::from(prefix)),
        _ => false,
    }
}

impl SsrfPolicy {
    /// The default policy: public addresses only, on ports [`DEFAULT_PORTS`], never one of
    /// this host's own addresses; no allow-list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses every address in `cidr` (`203.0.113.0/24`, `2001:db8::/32`, or one address)
    /// on top of the non-public ranges. An entry that does not parse makes the policy refuse
    /// every address (it fails closed) and is logged. Allow-listed hosts are not affected.
    #[must_use]
    pub fn deny_cidr(mut self, cidr: impl AsRef<str>) -> Self {
        match parse_cidr(cidr.as_ref()) {
            Some(range) => self.denied.push(range),
            None => {
                tracing::warn!(
                    entry = cidr.as_ref(),
                    "a deny-list entry does not parse: refusing every address"
                );
                self.deny_everything = true;
                self.rejected_entries.push(cidr.as_ref().to_owned());
            }
        }
        self
    }

    /// The ports public hosts may be reached on (default [`DEFAULT_PORTS`]); an empty list
    /// allows any port. Allow-listed hosts keep their own port rules.
    #[must_use]
    pub fn allow_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.ports = Some(ports.into_iter().collect());
        self
    }

    /// Replaces this host's addresses (read from the system by default) — for tests, or a
    /// host whose addresses the system does not list.
    #[must_use]
    pub fn with_local_addresses(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.local = Some(addrs.into_iter().collect());
        self
    }

    /// Why the policy refuses `ip` as a destination of a host not on the allow-list, or
    /// `None`: the non-public ranges ([`classify`]), this host's own addresses and the
    /// denied ranges.
    pub fn classify(&self, ip: IpAddr) -> Option<AddressClass> {
        if let Some(class) = classify(ip) {
            return Some(class);
        }
        let local = self.local.as_deref().unwrap_or_else(|| local_addresses());
        if local.contains(&ip) {
            return Some(AddressClass::LocalInterface);
        }
        if self.deny_everything || self.denied.iter().any(|r| in_cidr(ip, *r)) {
            return Some(AddressClass::Denied);
        }
        None
    }

    fn check_port(&self, host: &str, port: u16) -> Result<(), Refusal> {
        let ports = self.ports.as_deref().unwrap_or(&DEFAULT_PORTS);
        if ports.is_empty() || ports.contains(&port) {
            return Ok(());
        }
        Err(Refusal::Port {
            host: host.to_owned(),
            port,
            allowed: ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Admits `entry`, a `host` or `host:port` (IPv6 in brackets: `[::1]:8080`), even when it
    /// is or resolves to a non-public address. Without a port every port is admitted. A host
    /// name on the allow-list with ports is refused on other ports (it is declared internal).
    ///
    /// An entry that does not parse admits nothing (the policy fails closed) and is logged.
    #[must_use]
    pub fn allow_host(mut self, entry: impl AsRef<str>) -> Self {
        let entry = entry.as_ref();
        match parse_allow_entry(entry) {
            Some(e) => self.allow.push(e),
            None => {
                tracing::warn!(entry, "ignoring an allow-list entry that does not parse");
                self.rejected_entries.push(entry.to_owned());
            }
        }
        self
    }

    /// Whether `host` (any port) has an allow-list entry.
    pub fn is_host_allow_listed(&self, host: &str) -> bool {
        let host = norm_host(host);
        self.allow.iter().any(|e| e.host == host)
    }

    fn allow_listed(&self, host: &str, port: u16) -> bool {
        let host = norm_host(host);
        self.allow
            .iter()
            .any(|e| e.host == host && e.port.is_none_or(|p| p == port))
    }

    /// Parses `url` and checks it with [`check_url`](Self::check_url).
    ///
    /// # Errors
    /// A [`Refusal`] when the URL does not parse or is refused.
    pub fn parse_url(&self, url: &str) -> Result<Url, Refusal> {
        let url = Url::parse(url.trim()).map_err(|e| Refusal::InvalidUrl(e.to_string()))?;
        self.check_url(&url)?;
        Ok(url)
    }

    /// Checks everything that can be checked without DNS: scheme, user info, and an
    /// IP-literal host's address (and the allow-list). Host names are checked when they
    /// resolve.
    ///
    /// # Errors
    /// A [`Refusal`] saying why.
    pub fn check_url(&self, url: &Url) -> Result<(), Refusal> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(Refusal::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refusal::UserInfo);
        }
        let host_str = url.host_str().ok_or(Refusal::MissingHost)?;
        let port = url.port_or_known_default().unwrap_or(80);
        // The WHATWG parser has already turned every IPv4 spelling (decimal, octal, hex,
        // short forms) of an http(s) host into dotted-quad form, and IPv6 into brackets.
        let ip = match parse_ip_host(host_str) {
            Some(ip) => ip,
            None => {
                let d = host_str;
                if d.is_empty() || d == "." {
                    return Err(Refusal::MissingHost);
                }
                if self.is_host_allow_listed(d) {
                    if !self.allow_listed(d, port) {
                        return Err(Refusal::PortNotAllowed {
                            host: d.to_owned(),
                            port,
                        });
                    }
                    return Ok(());
                }
                return self.check_port(d, port);
            }
        };
        if self.allow_listed(host_str, port) {
            return Ok(());
        }
        if self.is_host_allow_listed(host_str) {
            return Err(Refusal::PortNotAllowed {
                host: host_str.to_owned(),
                port,
            });
        }
        self.check_ip(host_str, ip)?;
        self.check_port(host_str, port)
    }

    /// Judges one address `host` resolved to (or is), with [`classify`](Self::classify).
    ///
    /// # Errors
    /// [`Refusal::Blocked`] for a non-public, local or denied address.
    pub fn check_ip(&self, host: &str, addr: IpAddr) -> Result<(), Refusal> {
        match self.classify(addr) {
            None => Ok(()),
            Some(class) => Err(Refusal::Blocked {
                host: host.to_owned(),
                addr,
                class,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Option<AddressClass> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn every_range() {
        use AddressClass::*;
        let cases = [
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", ThisNetwork),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.0.1", Private),
            ("100.64.0.1", SharedAddressSpace),
            ("100.127.255.255", SharedAddressSpace),
            ("169.254.1.1", LinkLocal),
            ("169.254.169.254", Metadata),
            ("168.63.129.16", Metadata),
            ("224.0.0.1", Multicast),
            ("239.255.255.255", Multicast),
            ("255.255.255.255", Broadcast),
            ("192.0.2.1", Documentation),
            ("198.51.100.1", Documentation),
            ("203.0.113.1", Documentation),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("192.88.99.1", Reserved),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("fd00:ec2::254", Metadata),
            ("fec0::1", SiteLocal),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", Reserved),
            ("2001:0:4136:e378::1", Reserved),
            ("64:ff9b:1::1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:169.254.169.254", Metadata),
            ("::127.0.0.1", Loopback),
            ("::8.8.8.8", Reserved),
            ("::ffff:0:127.0.0.1", Loopback),
            ("::ffff:0:8.8.8.8", Reserved),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("2002:7f00:1::", Loopback),
            ("2002:c0a8:101::1", Private),
        ];
        for (ip, class) in cases {
            assert_eq!(c(ip), Some(class), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(c(ip), None, "{ip}");
        }
    }

    #[test]
    fn urls_and_allow_list() {
        let p = SsrfPolicy::new()
            .allow_host("127.0.0.1:8080")
            .allow_host("[::1]:9000")
            .allow_host("Intranet.Example:8443")
            .allow_host("open.example")
            .allow_host("bad entry:xx");
        assert!(p.parse_url("http://127.0.0.1:8080/x").is_ok());
        assert!(p.parse_url("http://127.1:8080/x").is_ok());
        assert!(matches!(
            p.parse_url("http://127.0.0.1:8081/"),
            Err(Refusal::PortNotAllowed { .. })
        ));
        assert!(p.parse_url("http://127.0.0.2:8080/").is_err());
        assert!(p.parse_url("http://[::1]:9000/").is_ok());
        assert!(p.parse_url("https://intranet.example:8443/").is_ok());
        assert!(matches!(
            p.parse_url("https://intranet.example/"),
            Err(Refusal::PortNotAllowed { port: 443, .. })
        ));
        assert!(p.is_host_allow_listed("OPEN.example."));
        assert!(p.parse_url("http://open.example:1/").is_ok());
        assert_eq!(
            p.parse_url("http://user@127.0.0.1:8080/"),
            Err(Refusal::UserInfo)
        );
        assert!(matches!(p.parse_url("ftp://x/"), Err(Refusal::Scheme(_))));
        assert!(matches!(
            p.parse_url("not a url"),
            Err(Refusal::InvalidUrl(_))
        ));
        let d = SsrfPolicy::new();
        for u in [
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.0.0.1/",
            "http://0x7f000001/",
            "http://127.1/",
            "http://0/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                matches!(d.parse_url(u), Err(Refusal::Blocked { .. })),
                "{u}"
            );
        }
        assert!(d.parse_url("https://example.com/").is_ok());
        assert!(d.parse_url("http://8.8.8.8/").is_ok());
        assert!(Refusal::UserInfo.is_url_problem());
        assert!(!Refusal::TooManyRedirects { max: 5 }.is_url_problem());
    }
}

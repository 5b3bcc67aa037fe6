//! What a file download may reach and what it may cost: pure rules, applied by the IO glue in
//! [`super`] (a DNS resolver, a check of each URL, a redirect policy, the body loop).
//!
//! File URLs come from DS's answers, and DS files are uploaded by the public: a URL (or a
//! redirect it leads to) may point anywhere, including services only this machine can reach.
//!
//! 1. **Addresses.** A download never connects to a loopback, private (RFC 1918), shared (CGNAT
//!    `100.64.0.0/10`), link-local (cloud metadata `169.254.169.254` included), unique-local,
//!    site-local, unspecified, broadcast, multicast, documentation or otherwise reserved
//!    address. IPv6 forms that embed an IPv4 address (mapped `::ffff:a.b.c.d`, compatible
//!    `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that IPv4 address
//!    ([`blocked_reason`]).
//! 2. **Exceptions.** The DS API endpoint's own host and port, and the hosts of the allow-list
//!    ([`AllowedHost`]: `HOST` for every port, `HOST:PORT` for one), may be anything: a
//!    self-hosted DS or a storage on the private network, the simulator in tests.
//! 3. **Where it is checked.** Each URL (the first and every redirect hop) before any request
//!    ([`HostPolicy::check_url`]): an IP literal is judged there, since it never reaches a
//!    resolver; a host name allowed on other ports only is refused there, since a resolver
//!    does not see ports. Every resolved address of a name ([`HostPolicy::filter_resolved`]):
//!    blocked addresses are dropped, and a name left with none is refused — the connection uses
//!    exactly the addresses checked, so a name cannot be re-resolved to something else.
//! 4. **Redirects** ([`HostPolicy::check_hop`]): at most [`MAX_HOPS`], never from `https` to
//!    `http`, each target checked as above.
//! 5. **Cost.** A body is read up to the size DS announced, plus one byte to notice a longer
//!    one ([`body_limit`]); DS announces no usable size for generated files (PDF, GeoJSON),
//!    then [`FetchOptions::max_unannounced_size`] applies. Each attempt has a deadline of
//!    `deadline_base + size / min_rate` ([`attempt_deadline`]). Sizes come from DS and may be
//!    anything up to `u64::MAX`: every computation saturates.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use url::{Host, Url};

use crate::options::FetchOptions;

/// Redirects followed per request (DS's signed URL → storage is one).
pub(crate) const MAX_HOPS: usize = 5;

/// The machine-readable reason of a file refused by this policy (`Failure::code`).
pub const BLOCKED_ADDRESS: &str = "blocked_address";

/// One entry of the file-host allow-list: `HOST` (every port) or `HOST:PORT`, the host a name,
/// an IPv4 address or a bracketed IPv6 address (`[::1]:8080`; unbracketed without a port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    host: Host<String>,
    port: Option<u16>,
}

impl AllowedHost {
    /// Exactly the host and port of `url` (its scheme's default port when it names none).
    pub fn of_url(url: &Url) -> Option<AllowedHost> {
        Some(AllowedHost {
            host: url.host()?.to_owned(),
            port: Some(url.port_or_known_default()?),
        })
    }

    /// Exactly `addr` (IP and port): a server of this machine, such as a test's.
    pub fn of_socket(addr: SocketAddr) -> AllowedHost {
        let host = match addr.ip() {
            IpAddr::V4(ip) => Host::Ipv4(ip),
            IpAddr::V6(ip) => Host::Ipv6(ip),
        };
        AllowedHost {
            host,
            port: Some(addr.port()),
        }
    }

    /// Whether `host:port` is this entry.
    fn matches(&self, host: &Host<&str>, port: u16) -> bool {
        self.matches_host(host) && self.port.is_none_or(|p| p == port)
    }

    fn matches_host(&self, host: &Host<&str>) -> bool {
        match (&self.host, host) {
            (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
            (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
            (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
            _ => false,
        }
    }
}

impl FromStr for AllowedHost {
    type Err = String;

    /// Parses `HOST[:PORT]`; the error names the entry and what is wrong with it.
    fn from_str(s: &str) -> Result<AllowedHost, String> {
        let text = s.trim();
        let bad = |why: &str| format!("`{s}` is not a file host (HOST or HOST:PORT): {why}");
        if text.contains(['/', '@', '?', '#', ' ', '*']) {
            return Err(bad("a host name, not a URL or a pattern"));
        }
        let (host, port) = split_host_port(text).ok_or_else(|| bad("unbalanced brackets"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let host = if host.contains(':') || text.starts_with('[') {
            Host::Ipv6(host.parse().map_err(|_| bad("invalid IPv6 address"))?)
        } else {
            Host::parse(host).map_err(|e| bad(&e.to_string()))?
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => Some(p),
                _ => return Err(bad(&format!("`{p}` is not a port"))),
            },
        };
        Ok(AllowedHost { host, port })
    }
}

/// `host` and `port` of `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or an unbracketed `V6`;
/// `None` for unbalanced brackets.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            after => Some((host, Some(after.strip_prefix(':').unwrap_or(after)))),
        };
    }
    if text.contains(']') {
        return None;
    }
    match text.matches(':').count() {
        0 => Some((text, None)),
        1 => text.split_once(':').map(|(h, p)| (h, Some(p))),
        _ => Some((text, None)),
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (Host::Ipv6(ip), Some(port)) => write!(f, "[{ip}]:{port}"),
            (host, Some(port)) => write!(f, "{host}:{port}"),
            (Host::Ipv6(ip), None) => write!(f, "{ip}"),
            (host, None) => write!(f, "{host}"),
        }
    }
}

/// Why an address may not be reached (`None`: a public address).
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, b, _) if (16..32).contains(&b) => "private",
        (100, b, _) if (64..128).contains(&b) => "shared (CGNAT)",
        (169, 254, _) => "link-local",
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "reserved",
        (198, 18 | 19, _) => "reserved",
        (255, 255, 255) if ip.is_broadcast() => "broadcast",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if let Some(v4) = embedded_v4(ip) {
        return blocked_v4(v4);
    }
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "unspecified",
        [0, 0, 0, 0, 0, 0, 0, 1] => "loopback",
        [0x64, 0xff9b, 1, ..] => "private",
        [0x100, 0, 0, 0, ..] => "reserved",
        [0x2001, 0, ..] | [0x2001, 0xdb8, ..] => "reserved",
        [a, ..] if a & 0xfe00 == 0xfc00 => "unique-local",
        [a, ..] if a & 0xffc0 == 0xfe80 => "link-local",
        [a, ..] if a & 0xffc0 == 0xfec0 => "site-local",
        [a, ..] if a & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for: mapped, compatible (but `::` and `::1`),
/// NAT64 well-known prefix, 6to4.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(v4(hi, lo)),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// A URL or address this policy refuses, before any connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Blocked(pub(crate) String);

impl Blocked {
    fn address(host: &str, ip: IpAddr, why: &str) -> Blocked {
        let target = if host == ip.to_string() || host == format!("[{ip}]") {
            format!("`{host}`")
        } else {
            format!("`{host}` (`{ip}`)")
        };
        Blocked(format!(
            "{BLOCKED_ADDRESS}: {target} is a {why} address, not an allowed file host"
        ))
    }
}

/// A redirect this policy does not follow.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HopRefusal {
    #[error("more than {MAX_HOPS} redirects")]
    TooMany,
    #[error("a redirect from https to http (`{0}`)")]
    Downgrade(String),
    #[error(transparent)]
    Blocked(#[from] Blocked),
}

/// The allow-list, the API endpoint, and the rules of the module docs.
#[derive(Clone, Debug, Default)]
pub(crate) struct HostPolicy {
    allowed: Vec<AllowedHost>,
}

impl HostPolicy {
    /// `allowed` and the host and port of `api_endpoint`.
    pub(crate) fn new(allowed: &[AllowedHost], api_endpoint: Option<&Url>) -> HostPolicy {
        let mut allowed = allowed.to_vec();
        allowed.extend(api_endpoint.and_then(AllowedHost::of_url));
        HostPolicy { allowed }
    }

    /// Rule 3 for one URL; the URL is shown without its query.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        let shown = || super::strip_query(url.as_str()).to_owned();
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Err(Blocked(format!(
                "{BLOCKED_ADDRESS}: `{}` names no host and port",
                shown()
            )));
        };
        if self.allowed.iter().any(|a| a.matches(&host, port)) {
            return Ok(());
        }
        let ip = match host {
            Host::Ipv4(ip) => IpAddr::V4(ip),
            Host::Ipv6(ip) => IpAddr::V6(ip),
            Host::Domain(name) => {
                if self.allowed.iter().any(|a| a.matches_host(&host)) {
                    return Err(Blocked(format!(
                        "{BLOCKED_ADDRESS}: `{name}` is an allowed file host on other ports \
                         only, not on `{port}`"
                    )));
                }
                return Ok(());
            }
        };
        match blocked_reason(ip) {
            Some(why) => Err(Blocked::address(
                url.host_str().unwrap_or_default(),
                ip,
                why,
            )),
            None => Ok(()),
        }
    }

    /// Rule 4: `previous` are the URLs requested so far (the first one included).
    pub(crate) fn check_hop(&self, previous: &[Url], next: &Url) -> Result<(), HopRefusal> {
        if previous.len() > MAX_HOPS {
            return Err(HopRefusal::TooMany);
        }
        let from_https = previous.last().is_some_and(|u| u.scheme() == "https");
        if from_https && next.scheme() != "https" {
            return Err(HopRefusal::Downgrade(
                super::strip_query(next.as_str()).to_owned(),
            ));
        }
        Ok(self.check_url(next)?)
    }

    /// Rule 3 for the addresses `name` resolved to: the allowed ones, or why there are none.
    pub(crate) fn filter_resolved(
        &self,
        name: &str,
        addrs: Vec<SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Blocked> {
        let domain = Host::Domain(name);
        if self.allowed.iter().any(|a| a.matches_host(&domain)) {
            return Ok(addrs);
        }
        let mut first_blocked = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|addr| match blocked_reason(addr.ip()) {
                Some(why) => {
                    first_blocked.get_or_insert((addr.ip(), why));
                    false
                }
                None => true,
            })
            .collect();
        match (allowed.is_empty(), first_blocked) {
            (true, Some((ip, why))) => Err(Blocked::address(name, ip, why)),
            _ => Ok(allowed),
        }
    }
}

/// How many body bytes an attempt may read before it is refused: one more than the size DS
/// announced (the extra byte proves the body longer), or `max_unannounced_size + 1` when DS
/// announces no usable size (`announced` is `None`).
pub(crate) fn body_limit(announced: Option<u64>, opts: &FetchOptions) -> u64 {
    announced
        .unwrap_or(opts.max_unannounced_size)
        .saturating_add(1)
}

/// The deadline of one attempt at a body of `size` bytes: `deadline_base + size / min_rate`
/// (`min_rate` in bytes per second); `None` when `min_rate` is 0 (no deadline).
pub(crate) fn attempt_deadline(size: u64, opts: &FetchOptions) -> Option<Duration> {
    let rate = Some(opts.min_rate).filter(|r| *r > 0)?;
    let secs = size / rate;
    let rest = size % rate;
    // `rest < rate`, so the fraction is below one second.
    let fraction = Duration::from_secs_f64(rest as f64 / rate as f64);
    Some(
        opts.deadline_base
            .saturating_add(Duration::from_secs(secs))
            .saturating_add(fraction),
    )
}

#[cfg(test)]
mod tests;

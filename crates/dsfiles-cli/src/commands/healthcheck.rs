//! `dsfiles healthcheck [--url URL]`: one `GET` to a running `dsfiles serve`, exit 0 on a 2xx
//! answer and 1 on anything else: the container `HEALTHCHECK` of an image that carries no
//! curl (docs/deploy.md).
//!
//! It speaks the least HTTP/1.1 that answers the question (a request with `Connection: close`,
//! then the status line) over plain TCP: it checks the service from inside its own container
//! or pod, where TLS is terminated elsewhere, and a probe must not need the DS client's stack
//! to work. Without `--url` it checks `/healthz` on the port the service listens on
//! (`DSFILES_LISTEN`, the variable `serve` reads, an unspecified address meaning loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use url::Url;

use crate::commands::serve;
use crate::exit::{Exit, UsageError};

/// The longest status line read before giving up on the answer.
const MAX_STATUS_LINE: u64 = 1024;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit codes: 0 the service answered 2xx; 1 it answered something else, or not in time, or could
not be reached (the reason goes to stderr); 2 usage (a URL that is not plain http).")]
pub struct HealthcheckArgs {
    /// The URL to check, plain `http://` [default: `http://127.0.0.1:PORT/healthz`, PORT taken
    /// from `DSFILES_LISTEN` as `dsfiles serve` reads it, else 8080].
    #[arg(long, value_name = "URL")]
    pub url: Option<Url>,

    /// Seconds the whole check may take.
    #[arg(long, value_name = "SECONDS", default_value = "5",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,
}

pub async fn run(args: HealthcheckArgs) -> anyhow::Result<Exit> {
    let url = match args.url {
        Some(url) => url,
        None => default_url(std::env::var(serve::env::DSFILES_LISTEN).ok().as_deref())?,
    };
    let target = Target::of(&url)?;
    let status = tokio::time::timeout(Duration::from_secs(args.timeout), target.status())
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {}s", args.timeout))
        .and_then(|answer| answer)
        .with_context(|| format!("`{url}` is not healthy"))?;
    if !(200..300).contains(&status) {
        bail!("`{url}` is not healthy: it answered {status}");
    }
    Ok(Exit::Success)
}

/// `/healthz` on the port `dsfiles serve` listens on, given `DSFILES_LISTEN`; an unspecified
/// address (`0.0.0.0`, `::`) is reached on loopback.
fn default_url(listen: Option<&str>) -> anyhow::Result<Url> {
    let addr = match listen.map(str::trim) {
        None | Some("") => SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        Some(text) => text.parse::<SocketAddr>().map_err(|_| {
            UsageError::new(format!(
                "`{}` is `{text}`, not an address such as 0.0.0.0:8080",
                serve::env::DSFILES_LISTEN
            ))
        })?,
    };
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url = format!("http://{}/healthz", SocketAddr::new(ip, addr.port()));
    Url::parse(&url).with_context(|| format!("cannot build the URL `{url}`"))
}

/// Where to connect and what to send.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port`, IPv6 hosts in brackets.
    authority: String,
    /// Path and query.
    path: String,
}

impl Target {
    fn of(url: &Url) -> anyhow::Result<Target> {
        if url.scheme() != "http" {
            return Err(UsageError::new(format!(
                "`{url}`: healthcheck speaks plain `http://` only (it checks the service from \
                 inside its container; TLS is terminated in front of it)"
            ))
            .into());
        }
        let host = match url.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            Some(host) => host.to_string(),
            None => return Err(UsageError::new(format!("`{url}` has no host")).into()),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        Ok(Target {
            authority: format!("{host}:{port}"),
            path: url[url::Position::BeforePath..url::Position::AfterQuery].to_owned(),
        })
    }

    /// Sends the request and returns the answer's status code.
    async fn status(&self) -> anyhow::Result<u16> {
        let mut stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .with_context(|| format!("cannot connect to `{}`", self.authority))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: dsfiles-healthcheck\r\n\
             Connection: close\r\n\r\n",
            self.path, self.authority
        );
        stream
            .write_all(request.as_bytes())
            .await
            .context("cannot send the request")?;
        let mut line = String::new();
        tokio::io::AsyncReadExt::take(tokio::io::BufReader::new(stream), MAX_STATUS_LINE)
            .read_line(&mut line)
            .await
            .context("cannot read the answer")?;
        parse_status_line(&line)
    }
}

/// The status code of an HTTP/1.x status line (`HTTP/1.1 200 OK`).
fn parse_status_line(line: &str) -> anyhow::Result<u16> {
    let mut parts = line.split_ascii_whitespace();
    let version = parts.next().unwrap_or_default();
    let code = parts
        .next()
        .filter(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(code) if version.starts_with("HTTP/1.") => Ok(code),
        _ if line.is_empty() => bail!("the connection closed without an answer"),
        _ => bail!("`{}` is not an HTTP/1.x status line", line.trim_end()),
    }
}

#[cfg(test)]
mod tests;

//! `dsfiles healthcheck [--url URL]`: one `GET` to a running `dsfiles serve`, exit 0 on a 2xx
//! answer and 1 on anything else: the container `HEALTHCHECK` of an image that carries no
//! curl (docs/deploy.md).
//!
//! Plain `http://` only, no redirects, no proxy: it checks the service from inside its own
//! container or pod, where TLS is terminated elsewhere. Without `--url` it checks `/healthz` on the port the service listens on
//! (`DSFILES_LISTEN`, the variable `serve` reads, an unspecified address meaning loopback).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context as _, bail};
use url::Url;

use crate::commands::serve;
use crate::exit::{Exit, UsageError};

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
    let url = plain_http(url)?;
    let status = tokio::time::timeout(Duration::from_secs(args.timeout), status(&url))
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

/// The URL, checked: plain `http://` only.
fn plain_http(url: Url) -> anyhow::Result<Url> {
    if url.scheme() != "http" || !url.has_host() {
        return Err(UsageError::new(format!(
            "`{url}`: healthcheck takes a plain `http://HOST…` URL (it checks the service from \
             inside its container; TLS is terminated in front of it)"
        ))
        .into());
    }
    Ok(url)
}

/// One `GET`, no redirects followed, no proxy: the answer's status code.
async fn status(url: &Url) -> anyhow::Result<u16> {
    dsfiles_core::sink::install_crypto_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent("dsfiles-healthcheck")
        .build()
        .context("cannot build the HTTP client")?;
    let response = (client.get(url.clone()).send().await).context("no answer")?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests;

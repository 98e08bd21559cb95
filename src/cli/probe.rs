//! `fulfilment health`: asks a process on this host whether it is ready, for container health
//! checks (the image has no HTTP client of its own). A plain HTTP/1.0 request over loopback.

use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Asks `GET /health/ready` at `address` (a listen address: `0.0.0.0` and `[::]` mean this
/// host) and returns the status code and body.
pub async fn ready(address: &str) -> anyhow::Result<(u16, String)> {
    let address = local(address)?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        let request = format!("GET /health/ready HTTP/1.0\r\nHost: {address}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .with_context(|| format!("{address} did not answer within {} s", TIMEOUT.as_secs()))?
        .with_context(|| format!("asking {address} whether it is ready"))?;
    parse(&response).with_context(|| format!("{address} did not answer HTTP"))
}

/// The address to connect to for a listen address.
fn local(address: &str) -> anyhow::Result<std::net::SocketAddr> {
    let mut address: std::net::SocketAddr = address
        .parse()
        .with_context(|| format!("{address:?} is not an address such as 127.0.0.1:8080"))?;
    if address.ip().is_unspecified() {
        let loopback: std::net::IpAddr = match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        address.set_ip(loopback);
    }
    Ok(address)
}

/// The status code and body of an HTTP response.
fn parse(response: &str) -> Option<(u16, String)> {
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_and_body_and_targets_this_host() {
        let response = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\r\n{\"ready\":false}";
        assert_eq!(parse(response), Some((503, "{\"ready\":false}".into())));
        assert_eq!(parse("garbage"), None);
        assert_eq!(local("0.0.0.0:8080").unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(local("[::]:9090").unwrap().to_string(), "[::1]:9090");
        assert!(local("localhost").is_err());
    }
}

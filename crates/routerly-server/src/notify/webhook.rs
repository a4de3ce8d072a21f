//! Webhook deliveries: a JSON POST signed as `X-Routerly-Signature: sha256=<hex HMAC>`, and
//! the SSRF guard.
//!
//! The guard refuses targets on loopback, private, link-local, unique-local, carrier-grade
//! NAT, multicast and unspecified addresses (IPv4-mapped IPv6 included) unless
//! `allow_private_webhooks` is set. It runs when a channel is created and again at every
//! delivery, after DNS resolution; the delivery then connects to the very addresses that
//! were checked, so a name that re-resolves to a private address cannot slip through.
//! Redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hmac::{Hmac, Mac};
use routerly_core::alerts::AlertEvent;
use sha2::Sha256;

use super::DeliveryError;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `ip` is an address webhooks may not reach by default: loopback, private, link-local,
/// carrier-grade NAT, reserved, multicast and unspecified IPv4; loopback, unique-local,
/// site-local, link-local, documentation, discard, multicast and unspecified IPv6; and every
/// IPv6 form that carries an IPv4 address (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
/// `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) judged by the IPv4 address it carries.
/// Teredo (`2001::/32`) and local-use NAT64 (`64:ff9b:1::/48`) tunnels reach addresses that
/// cannot be told from the outside, so they are refused whole.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let octets = v6.octets();
            let embedded_at = |at: usize| {
                std::net::Ipv4Addr::new(octets[at], octets[at + 1], octets[at + 2], octets[at + 3])
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            // IPv4-compatible (deprecated, but still routed by some stacks) and NAT64.
            let ipv4_compatible = segments[..6] == [0; 6];
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if (ipv4_compatible && !v6.is_loopback() && !v6.is_unspecified()) || nat64 {
                return is_private(IpAddr::V4(embedded_at(12)));
            }
            if segments[0] == 0x2002 {
                return is_private(IpAddr::V4(embedded_at(2)));
            }
            let first = segments[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first == 0x2001 && segments[1] == 0)
                || (first == 0x2001 && segments[1] == 0x0db8)
                || (first == 0x64 && segments[1] == 0xff9b && segments[2] == 1)
                || (first == 0x100 && segments[1..4] == [0, 0, 0])
        }
    }
}

/// The URL parsed, with its host and port, or why it is not a webhook URL.
fn parse_target(url: &str) -> Result<(reqwest::Url, String, u16), DeliveryError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| DeliveryError::Refused(format!("`{url}` is not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(DeliveryError::Refused(format!(
            "`{url}`: webhooks must use http or https"
        )));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| DeliveryError::Refused(format!("`{url}` has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| DeliveryError::Refused(format!("`{url}` has no port")))?;
    Ok((parsed, host, port))
}

/// The addresses `host` resolves to, refused when any is private (unless allowed).
async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, DeliveryError> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|error| DeliveryError::Webhook(format!("cannot resolve `{host}`: {error}")))?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(DeliveryError::Webhook(format!("`{host}` has no address")));
    }
    if !allow_private
        && let Some(private) = addresses.iter().find(|address| is_private(address.ip()))
    {
        return Err(DeliveryError::Refused(format!(
            "webhook host `{host}` resolves to {}, a loopback, private or link-local address; set allow-private-webhooks to allow it",
            private.ip()
        )));
    }
    Ok(addresses)
}

/// Checks a webhook URL when a channel is created: its shape, and its addresses when the
/// name resolves now (a name that does not resolve yet is checked at delivery).
pub async fn check_url(url: &str, allow_private: bool) -> Result<(), DeliveryError> {
    let (_, host, port) = parse_target(url)?;
    if host.eq_ignore_ascii_case("localhost") && !allow_private {
        return Err(DeliveryError::Refused(format!(
            "webhook host `{host}` is loopback; set allow-private-webhooks to allow it"
        )));
    }
    match resolve_checked(&host, port, allow_private).await {
        Ok(_) | Err(DeliveryError::Webhook(_)) => Ok(()),
        Err(error) => Err(error),
    }
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `event` to `url`, signed with `secret` when given; a 2xx answer is success.
pub async fn post(
    url: &str,
    secret: Option<&str>,
    event: &AlertEvent,
    allow_private: bool,
) -> Result<(), DeliveryError> {
    let (parsed, host, port) = parse_target(url)?;
    let addresses = resolve_checked(&host, port, allow_private).await?;
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true);
    if host.parse::<IpAddr>().is_err() {
        builder = builder.resolve_to_addrs(&host, &addresses);
    }
    let client = builder
        .build()
        .map_err(|error| DeliveryError::Webhook(error.to_string()))?;
    let body = serde_json::to_vec(event).expect("an alert serializes");
    let mut request = client
        .post(parsed)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("x-routerly-event", event.event.as_str())
        .header(
            http::header::USER_AGENT,
            concat!("routerly/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(secret) = secret {
        request = request.header("x-routerly-signature", signature(secret, &body));
    }
    let response = request
        .body(body)
        .send()
        .await
        .map_err(|error| DeliveryError::Webhook(error.to_string()))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(DeliveryError::Webhook(format!(
            "the receiver answered HTTP {status}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        let cases = [
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("10.0.0.1", true),
            ("172.16.0.1", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("100.64.0.1", true),
            ("0.0.0.0", true),
            ("8.8.8.8", false),
            ("::1", true),
            ("::", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.1.2.3", true),
            ("::ffff:8.8.8.8", false),
            ("2001:4860:4860::8888", false),
            ("2606:4700::1111", false),
            // IPv4-compatible.
            ("::127.0.0.1", true),
            ("::10.0.0.1", true),
            ("::8.8.8.8", false),
            // NAT64.
            ("64:ff9b::7f00:1", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::808:808", false),
            ("64:ff9b:1::808:808", true),
            // 6to4.
            ("2002:7f00:1::", true),
            ("2002:c0a8:101::1", true),
            ("2002:808:808::1", false),
            // Teredo, site-local, documentation, discard.
            ("2001::1", true),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
            ("fec0::1", true),
            ("feff::1", true),
            ("2001:db8::1", true),
            ("100::1", true),
            // Reserved IPv4.
            ("240.0.0.1", true),
            ("255.255.255.255", true),
            ("198.18.0.1", true),
            ("192.0.0.8", true),
            ("192.0.2.1", false),
        ];
        for (text, private) in cases {
            let ip: IpAddr = text.parse().expect("test address");
            assert_eq!(is_private(ip), private, "{text}");
        }
    }

    #[tokio::test]
    async fn urls_on_private_hosts_are_refused_by_default() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://localhost/hook",
            "http://[::1]:8080/hook",
            "http://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let error = check_url(url, false).await.expect_err(url);
            assert!(matches!(error, DeliveryError::Refused(_)), "{url}: {error}");
            check_url(url, true)
                .await
                .expect("allowed when private webhooks are");
        }
        assert!(check_url("ftp://example.com/x", true).await.is_err());
    }

    #[test]
    fn signatures_are_hex_hmac_sha256() {
        // RFC 4231, test case 2.
        let signature = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

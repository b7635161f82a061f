//! Where a webhook may point: the URL rules checked on registration, the
//! address ranges refused unless `[webhooks] allow_private` (so that no app
//! can use tapir to reach internal services), and the HTTP client whose
//! resolver applies the same rule to every address it connects to (a name
//! that resolved to a public address at registration and to a private one
//! later is refused then).

use crate::config::WebhooksConfig;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Why a URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URL.
    #[error("{0:?} is not a URL: {1}")]
    Malformed(String, String),
    /// Longer than [`super::MAX_URL`].
    #[error("a webhook URL may have at most {} characters", super::MAX_URL)]
    TooLong,
    /// Not https (or http when allowed).
    #[error(
        "a webhook URL must be https:// (http:// only when the operator sets [webhooks] allow_http), not {0:?}"
    )]
    Scheme(String),
    /// User name or password in the URL.
    #[error(
        "a webhook URL may not carry a user name or password; the receiver checks the signature instead"
    )]
    Credentials,
    /// A fragment.
    #[error("a webhook URL may not have a #fragment")]
    Fragment,
    /// No host.
    #[error("a webhook URL needs a host")]
    NoHost,
    /// The host is or resolves to a non-public address.
    #[error(
        "{0} is a loopback, private or otherwise internal address; webhooks may not point there unless the operator sets [webhooks] allow_private"
    )]
    Private(String),
    /// The name does not resolve.
    #[error("the host {0:?} could not be resolved: {1}")]
    Unresolved(String, String),
}

/// True for every address a webhook may not reach unless private targets
/// are allowed: loopback, private (RFC 1918, unique-local), link-local,
/// shared (CGNAT), unspecified, broadcast, multicast, documentation,
/// benchmarking and reserved ranges, and IPv4 addresses embedded in IPv6
/// (mapped, compatible, NAT64) by the IPv4 rule.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4);
    }
    let s = ip.segments();
    // IPv4-compatible (::a.b.c.d) and NAT64 (64:ff9b::/96).
    if (s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified())
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4])
    {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return internal_v4(v4);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] == 0x2001 && s[1] == 0x0db8)
}

/// Check a webhook URL against the rules and, unless private targets are
/// allowed, check where its host points now (a name is resolved, within 5
/// seconds).
pub async fn check_url(text: &str, settings: &WebhooksConfig) -> Result<reqwest::Url, TargetError> {
    if text.len() > super::MAX_URL {
        return Err(TargetError::TooLong);
    }
    let url = reqwest::Url::parse(text)
        .map_err(|e| TargetError::Malformed(text.into(), e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if settings.allow_http => {}
        other => return Err(TargetError::Scheme(format!("{other}://"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if url.fragment().is_some() {
        return Err(TargetError::Fragment);
    }
    let host = url.host().ok_or(TargetError::NoHost)?;
    if settings.allow_private {
        return Ok(url);
    }
    match host {
        url::Host::Ipv4(ip) => literal(IpAddr::V4(ip))?,
        url::Host::Ipv6(ip) => literal(IpAddr::V6(ip))?,
        url::Host::Domain(name) => {
            let lower = name.to_ascii_lowercase();
            if lower == "localhost" || lower.ends_with(".localhost") {
                return Err(TargetError::Private(name.to_string()));
            }
            let port = url.port_or_known_default().unwrap_or(443);
            resolve_public(name, port).await?;
        }
    }
    Ok(url)
}

fn literal(ip: IpAddr) -> Result<(), TargetError> {
    if is_internal(ip) {
        Err(TargetError::Private(ip.to_string()))
    } else {
        Ok(())
    }
}

/// Resolve `name` and keep its public addresses; none is an error.
async fn resolve_public(name: &str, port: u16) -> Result<Vec<SocketAddr>, TargetError> {
    let found = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((name, port)),
    )
    .await
    .map_err(|_| TargetError::Unresolved(name.into(), "timed out".into()))?
    .map_err(|e| TargetError::Unresolved(name.into(), e.to_string()))?;
    let all: Vec<SocketAddr> = found.collect();
    let public: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| !is_internal(a.ip()))
        .collect();
    match (all.first(), public.is_empty()) {
        (None, _) => Err(TargetError::Unresolved(name.into(), "no address".into())),
        (Some(a), true) => Err(TargetError::Private(format!("{name} ({})", a.ip()))),
        _ => Ok(public),
    }
}

/// The resolver of the delivery client: every name is resolved again at
/// connection time and only its public addresses are used (all of them
/// when private targets are allowed).
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = if allow {
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect()
            } else {
                let lower = host.to_ascii_lowercase();
                if lower == "localhost" || lower.ends_with(".localhost") {
                    return Err(Box::new(TargetError::Private(host)) as _);
                }
                resolve_public(&host, 0).await.map_err(Box::new)?
            };
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Refuse a URL whose host is a non-public address literal (names go
/// through the client's resolver). Checked before every POST.
pub fn check_literal(url: &reqwest::Url, settings: &WebhooksConfig) -> Result<(), TargetError> {
    if settings.allow_private {
        return Ok(());
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => literal(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => literal(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => Ok(()),
        None => Err(TargetError::NoHost),
    }
}

/// The delivery client: no redirects followed, no proxy, https only unless
/// http is allowed, the request timeout of `[webhooks] timeout`, and the
/// guarded resolver.
pub fn client(settings: &WebhooksConfig) -> Result<reqwest::Client, reqwest::Error> {
    let timeout =
        crate::config::MediaSettings::timeout(settings.timeout).unwrap_or(Duration::from_secs(10));
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!settings.allow_http)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(4)
        .user_agent(concat!("tapir-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver {
            allow_private: settings.allow_private,
        }))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> WebhooksConfig {
        WebhooksConfig::default()
    }

    #[test]
    fn internal_ranges_are_known() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_with_a_clear_sentence() {
        let s = strict();
        let err = |u: &'static str| {
            let s = s.clone();
            async move { check_url(u, &s).await.unwrap_err().to_string() }
        };
        assert!(err("not a url").await.contains("is not a URL"));
        assert!(err("http://93.184.216.34/x").await.contains("https://"));
        assert!(err("ftp://93.184.216.34/x").await.contains("https://"));
        assert!(
            err("https://u:p@93.184.216.34/")
                .await
                .contains("user name")
        );
        assert!(err("https://93.184.216.34/#x").await.contains("fragment"));
        assert!(
            err("https://127.0.0.1:8080/")
                .await
                .contains("allow_private")
        );
        assert!(err("https://[::1]/").await.contains("allow_private"));
        assert!(
            err("https://169.254.169.254/latest")
                .await
                .contains("allow_private")
        );
        assert!(err("https://LOCALHOST/").await.contains("allow_private"));
        assert!(err("https://a.localhost/").await.contains("allow_private"));
        // Other spellings of loopback that URL parsing turns into addresses.
        assert!(err("https://2130706433/").await.contains("allow_private"));
        assert!(err("https://0x7f.1/").await.contains("allow_private"));
        assert!(
            err("https://[::ffff:127.0.0.1]/")
                .await
                .contains("allow_private")
        );
        let long = format!("https://93.184.216.34/{}", "a".repeat(2000));
        assert!(
            check_url(&long, &s)
                .await
                .unwrap_err()
                .to_string()
                .contains("at most")
        );
        assert!(
            check_url("https://93.184.216.34/hook?x=1", &s)
                .await
                .is_ok()
        );
        let open = WebhooksConfig {
            allow_http: true,
            allow_private: true,
            ..strict()
        };
        assert!(check_url("http://127.0.0.1:9/x", &open).await.is_ok());
        let url = reqwest::Url::parse("https://10.0.0.1/").unwrap();
        assert!(check_literal(&url, &s).is_err());
        assert!(check_literal(&url, &open).is_ok());
    }

    #[tokio::test]
    async fn the_delivery_resolver_refuses_internal_addresses() {
        use reqwest::dns::Resolve;
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(guarded.resolve(name).await.is_err());
        // A name that resolves only to loopback is refused by what it
        // resolves to, not by its name.
        let e = resolve_public("localhost", 80).await.unwrap_err();
        assert!(matches!(e, TargetError::Private(_)), "{e}");
        let open = GuardedResolver {
            allow_private: true,
        };
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = open.resolve(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}

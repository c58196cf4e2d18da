//! Which proxy a client's requests go through, decided once per client from
//! the environment, by the rules the anchor's httpx client applies
//! (`trust_env=True`): the `*_proxy` variables as Python's
//! `urllib.request.getproxies_environment` reads them (lowercase names win;
//! `HTTP_PROXY` is ignored under CGI), then httpx's mount patterns
//! (`http://`, `https://`, `all://`, and one bypass pattern per `NO_PROXY`
//! entry, most specific first).
//!
//! A client only ever talks to its base URL's origin, so the decision is one
//! proxy URL or none, handed to reqwest; reqwest's own reading of the
//! environment is switched off. Where httpx's rules have a defect this keeps
//! curl's meaning instead: a `NO_PROXY` entry with a prefix length
//! (`10.0.0.0/8`) bypasses the proxy for the whole network, where httpx
//! compares the address part alone.

use std::net::IpAddr;

use crate::error::Error;

/// The proxy for requests to `base_url`, from this process's environment.
pub fn for_base_url(base_url: &str) -> Result<Option<String>, Error> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    choose(base_url, &env)
}

/// The proxy for requests to `base_url` given the environment `env` (in the
/// environment's order), or `None` to connect directly.
pub fn choose(base_url: &str, env: &[(String, String)]) -> Result<Option<String>, Error> {
    let Ok(url) = reqwest::Url::parse(base_url) else {
        // The request reports the bad URL itself.
        return Ok(None);
    };
    let target = Target {
        scheme: url.scheme().to_ascii_lowercase(),
        host: strip_brackets(url.host_str().unwrap_or_default()).to_ascii_lowercase(),
        port: url.port(),
    };
    let Some(mounts) = mounts(&proxy_variables(env)) else {
        return Ok(None);
    };
    let mut patterns: Vec<(Pattern, Option<String>)> = mounts
        .into_iter()
        .filter_map(|(key, proxy)| Some((Pattern::parse(&key)?, proxy)))
        .collect();
    // Most specific first; a stable sort keeps insertion order among equals.
    patterns.sort_by_key(|(p, _)| p.priority());
    let chosen = patterns
        .into_iter()
        .find(|(p, _)| p.matches(&target))
        .and_then(|(_, proxy)| proxy);
    match chosen {
        Some(proxy) => check_scheme(proxy).map(Some),
        None => Ok(None),
    }
}

/// `urllib.request.getproxies_environment()`: `{"http": ..., "no": ...}`.
fn proxy_variables(env: &[(String, String)]) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    // First pass: any case; second pass: names ending in lowercase `_proxy`
    // override (or, when empty, remove) what the first found.
    for (name, value) in env {
        let lower = name.to_ascii_lowercase();
        if let Some(key) = lower.strip_suffix("_proxy") {
            if !value.is_empty() {
                upsert(&mut found, key, value.clone());
            }
        }
    }
    // Under CGI, HTTP_PROXY may come from a client's `Proxy:` header.
    if env.iter().any(|(k, _)| k == "REQUEST_METHOD") {
        found.retain(|(k, _)| k != "http");
    }
    for (name, value) in env {
        if let Some(key) = name.strip_suffix("_proxy") {
            let key = key.to_ascii_lowercase();
            if value.is_empty() {
                found.retain(|(k, _)| *k != key);
            } else {
                upsert(&mut found, &key, value.clone());
            }
        }
    }
    found
}

/// Set `key` in an ordered list of pairs, keeping its place when it is
/// already there (as assigning to a Python dict does).
fn upsert<V>(pairs: &mut Vec<(String, V)>, key: &str, value: V) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => pairs.push((key.to_owned(), value)),
    }
}

/// Pattern -> proxy URL (`None`: go direct), in insertion order.
type Mounts = Vec<(String, Option<String>)>;

/// httpx's `get_environment_proxies()`; `None` when `NO_PROXY` has `*`.
fn mounts(vars: &[(String, String)]) -> Option<Mounts> {
    let get = |key: &str| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let mut mounts = Mounts::new();
    let mut mount = |key: String, proxy: Option<String>| upsert(&mut mounts, &key, proxy);
    for scheme in ["http", "https", "all"] {
        if let Some(proxy) = get(scheme).filter(|v| !v.is_empty()) {
            let proxy = if proxy.contains("://") {
                proxy.to_owned()
            } else {
                format!("http://{proxy}")
            };
            mount(format!("{scheme}://"), Some(proxy));
        }
    }
    for entry in get("no").unwrap_or_default().split(',').map(str::trim) {
        let address = entry.split('/').next().unwrap_or_default();
        if entry == "*" {
            return None;
        } else if entry.is_empty() {
            continue;
        } else if entry.contains("://") {
            mount(entry.to_owned(), None);
        } else if address.parse::<std::net::Ipv4Addr>().is_ok() {
            mount(format!("all://{entry}"), None);
        } else if address.parse::<std::net::Ipv6Addr>().is_ok() {
            mount(format!("all://[{entry}]"), None);
        } else if entry.eq_ignore_ascii_case("localhost") {
            mount(format!("all://{entry}"), None);
        } else {
            mount(format!("all://*{entry}"), None);
        }
    }
    Some(mounts)
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The request's origin, as httpx's `URL` shows it: lowercase host without
/// IPv6 brackets, no port when it is the scheme's default.
struct Target {
    scheme: String,
    host: String,
    port: Option<u16>,
}

enum Host {
    Any,
    /// `example.com`: that name only.
    Exact(String),
    /// `*example.com`: the name and its subdomains.
    NameOrSub(String),
    /// `*.example.com`: subdomains only.
    SubOnly(String),
    /// `10.0.0.0/8` (and `[fd00::/8]`): every address in the network.
    Network(IpAddr, u8),
}

/// httpx's `URLPattern`.
struct Pattern {
    scheme: String,
    host: Host,
    /// The host as written, whose length ranks the pattern.
    host_text: String,
    port: Option<u16>,
}

impl Pattern {
    fn parse(key: &str) -> Option<Pattern> {
        let (scheme, rest) = key.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        // `[v6]` or `[v6/len]`, then an optional `:port`, then a path.
        let (host_text, after) = if let Some(inner) = authority.strip_prefix('[') {
            let (h, after) = inner.split_once(']')?;
            (h.to_ascii_lowercase(), after)
        } else {
            let end = authority.find([':', '/']).unwrap_or(authority.len());
            (authority[..end].to_ascii_lowercase(), &authority[end..])
        };
        let (port_text, path) = match after.strip_prefix(':') {
            Some(p) => p.split_at(p.find('/').unwrap_or(p.len())),
            None => ("", after),
        };
        let port = match port_text {
            "" => None,
            p => Some(p.parse::<u16>().ok()?),
        };
        let port = port.filter(|p| default_port(&scheme) != Some(*p));
        let network = |addr: &str, len: &str| -> Option<Host> {
            let ip: IpAddr = addr.parse().ok()?;
            let len: u8 = len.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            (len <= max).then_some(Host::Network(ip, len))
        };
        let host = if let Some((addr, len)) = host_text.split_once('/') {
            network(addr, len)?
        } else if let Some(len) = path
            .strip_prefix('/')
            .filter(|_| host_text.parse::<IpAddr>().is_ok())
        {
            network(&host_text, len).unwrap_or_else(|| Host::Exact(host_text.clone()))
        } else if host_text.is_empty() || host_text == "*" {
            Host::Any
        } else if let Some(d) = host_text.strip_prefix("*.") {
            Host::SubOnly(d.to_owned())
        } else if let Some(d) = host_text.strip_prefix('*') {
            Host::NameOrSub(d.to_owned())
        } else {
            Host::Exact(host_text.clone())
        };
        let host_text = match host {
            Host::Any => String::new(),
            Host::Network(ip, _) => ip.to_string(),
            _ => host_text,
        };
        Some(Pattern {
            scheme: if scheme == "all" { String::new() } else { scheme },
            host,
            host_text,
            port,
        })
    }

    /// httpx's order: with a port first, then longer hosts, then longer schemes.
    fn priority(&self) -> (u8, isize, isize) {
        (
            u8::from(self.port.is_none()),
            -(self.host_text.len() as isize),
            -(self.scheme.len() as isize),
        )
    }

    fn matches(&self, t: &Target) -> bool {
        if !self.scheme.is_empty() && self.scheme != t.scheme {
            return false;
        }
        if self.port.is_some() && self.port != t.port {
            return false;
        }
        match &self.host {
            Host::Any => true,
            Host::Exact(h) => *h == t.host,
            Host::NameOrSub(d) => {
                t.host == *d
                    || t.host
                        .strip_suffix(d.as_str())
                        .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
            }
            Host::SubOnly(d) => t
                .host
                .strip_suffix(d.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            Host::Network(net, len) => t
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| in_network(ip, *net, *len)),
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// httpx accepts http, https, socks5 and socks5h proxies; this build speaks
/// the first two (SOCKS needs httpx's optional `socksio` in the anchor too).
fn check_scheme(proxy: String) -> Result<String, Error> {
    let scheme = proxy
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    let message = match scheme.as_str() {
        "http" | "https" => return Ok(proxy),
        "socks5" | "socks5h" => format!(
            "SOCKS proxies are not supported: {} (use an HTTP proxy, or set NO_PROXY)",
            without_password(&proxy)
        ),
        _ => format!("Unknown scheme for proxy URL {:?}", without_password(&proxy)),
    };
    Err(Error::Config {
        message,
        key: Some("proxy".into()),
    })
}

/// `scheme://user:[secure]@host`: a proxy URL fit for a message.
pub fn without_password(proxy: &str) -> String {
    let Some((scheme, rest)) = proxy.split_once("://") else {
        return proxy.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:[secure]")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{masked}@{host}{}", &rest[authority_end..])
        }
        None => proxy.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn pick(base: &str, pairs: &[(&str, &str)]) -> Option<String> {
        choose(base, &env(pairs)).unwrap()
    }

    const P: &str = "http://proxy:3128";

    #[test]
    fn scheme_variables_pick_by_target_scheme() {
        assert_eq!(
            pick("http://api.example/v1", &[("HTTP_PROXY", P)]),
            Some(P.into())
        );
        assert_eq!(pick("https://api.example/v1", &[("HTTP_PROXY", P)]), None);
        assert_eq!(
            pick("https://api.example/v1", &[("HTTPS_PROXY", P)]),
            Some(P.into())
        );
        assert_eq!(
            pick("https://api.example/v1", &[("ALL_PROXY", P)]),
            Some(P.into())
        );
        // A scheme's own variable beats ALL_PROXY (the longer scheme ranks first).
        assert_eq!(
            pick(
                "https://a.example",
                &[("ALL_PROXY", "http://all:1"), ("HTTPS_PROXY", P)]
            ),
            Some(P.into())
        );
        // No scheme: httpx assumes http://.
        assert_eq!(
            pick("http://a.example", &[("HTTP_PROXY", "proxy:3128")]),
            Some(P.into())
        );
        assert_eq!(pick("http://a.example", &[]), None);
    }

    #[test]
    fn lowercase_names_win_and_empty_lowercase_removes() {
        let both = [("HTTP_PROXY", "http://upper:1"), ("http_proxy", "http://lower:2")];
        assert_eq!(pick("http://a.example", &both), Some("http://lower:2".into()));
        let reversed = [("http_proxy", "http://lower:2"), ("HTTP_PROXY", "http://upper:1")];
        assert_eq!(pick("http://a.example", &reversed), Some("http://lower:2".into()));
        assert_eq!(
            pick("http://a.example", &[("HTTP_PROXY", P), ("http_proxy", "")]),
            None
        );
        // Under CGI only the lowercase variable counts.
        assert_eq!(
            pick(
                "http://a.example",
                &[("HTTP_PROXY", P), ("REQUEST_METHOD", "GET")]
            ),
            None
        );
        assert_eq!(
            pick(
                "http://a.example",
                &[("http_proxy", P), ("REQUEST_METHOD", "GET")]
            ),
            Some(P.into())
        );
    }

    #[test]
    fn no_proxy_entries() {
        let with = |no: &str, base: &str| pick(base, &[("ALL_PROXY", P), ("NO_PROXY", no)]);
        assert_eq!(with("*", "http://127.0.0.1:8080"), None);
        assert_eq!(with("a.example, *", "http://b.example"), None);
        assert_eq!(with("127.0.0.1", "http://127.0.0.1:8080"), None);
        assert_eq!(with("127.0.0.2", "http://127.0.0.1:8080"), Some(P.into()));
        assert_eq!(with("localhost", "http://LOCALHOST:1"), None);
        // A name covers itself and its subdomains, not look-alikes.
        assert_eq!(with("example.com", "https://example.com"), None);
        assert_eq!(with("example.com", "https://api.example.com"), None);
        assert_eq!(with("example.com", "https://notexample.com"), Some(P.into()));
        // A leading dot: subdomains only.
        assert_eq!(with(".example.com", "https://api.example.com"), None);
        assert_eq!(with(".example.com", "https://example.com"), Some(P.into()));
        // With a port: that port only.
        assert_eq!(with("127.0.0.1:8080", "http://127.0.0.1:8080"), None);
        assert_eq!(with("127.0.0.1:8080", "http://127.0.0.1:9090"), Some(P.into()));
        // IPv6.
        assert_eq!(with("::1", "http://[::1]:8080"), None);
        // A URL form: that scheme (and host) only.
        assert_eq!(with("http://a.example", "http://a.example"), None);
        assert_eq!(with("http://a.example", "https://a.example"), Some(P.into()));
        // Networks (curl's meaning; httpx would compare the address alone).
        assert_eq!(with("127.0.0.0/8", "http://127.0.0.1:1"), None);
        assert_eq!(with("10.0.0.0/8", "http://127.0.0.1:1"), Some(P.into()));
        assert_eq!(with("fd00::/8", "http://[fd12::1]:1"), None);
    }

    #[test]
    fn default_ports_are_no_ports() {
        // httpx drops a scheme's default port from a pattern, which then
        // matches any port.
        let pairs = [("ALL_PROXY", P), ("NO_PROXY", "http://a.example:80")];
        assert_eq!(pick("http://a.example/v1", &pairs), None);
        assert_eq!(pick("http://a.example:8080/v1", &pairs), None);
        let pairs = [("ALL_PROXY", P), ("NO_PROXY", "http://a.example:81")];
        assert_eq!(pick("http://a.example/v1", &pairs), Some(P.into()));
        assert_eq!(pick("http://a.example:81/v1", &pairs), None);
        // ... and from the target.
        let pairs = [("ALL_PROXY", P), ("NO_PROXY", "a.example:443")];
        assert_eq!(pick("https://a.example/v1", &pairs), Some(P.into()));
    }

    #[test]
    fn unsupported_proxies_are_configuration_errors() {
        let err = choose("http://a.example", &env(&[("HTTP_PROXY", "socks5://u:pw@h:1")])).unwrap_err();
        assert!(matches!(err, Error::Config { .. }));
        assert!(
            err.message().contains("socks5://u:[secure]@h:1"),
            "{}",
            err.message()
        );
        let err = choose("http://a.example", &env(&[("HTTP_PROXY", "ftp://h:1")])).unwrap_err();
        assert_eq!(err.message(), "Unknown scheme for proxy URL \"ftp://h:1\"");
        // Not chosen for this target: no error.
        assert_eq!(pick("https://a.example", &[("HTTP_PROXY", "socks5://h:1")]), None);
    }

    #[test]
    fn bad_base_urls_and_bad_patterns_are_ignored() {
        assert_eq!(pick("not a url", &[("ALL_PROXY", P)]), None);
        assert_eq!(
            pick(
                "http://a.example",
                &[("ALL_PROXY", P), ("NO_PROXY", "http://[zz")]
            ),
            Some(P.into())
        );
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(without_password("http://u:p@h:1/x"), "http://u:[secure]@h:1/x");
        assert_eq!(without_password("http://u@h:1"), "http://u@h:1");
        assert_eq!(without_password("http://h:1"), "http://h:1");
    }
}

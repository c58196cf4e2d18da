//! The TLS setup of a client that verifies certificates, built once per process.
//!
//! A client trusts Mozilla's root certificates (the set the anchor trusts
//! through certifi) merged with the system's, or with those of
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` when set. So every server the anchor can
//! verify verifies here too, including on a machine with no CA store at all,
//! where the system verifier alone refuses to be built.
//!
//! Reading and parsing the system's CA bundle takes milliseconds (~14 ms on
//! the project's machines), and reqwest does it again for every client it
//! builds. Here it is done once, and again only when one of those two
//! variables has changed; each client gets a copy with a session cache of its
//! own, as before.

use std::ffi::OsString;
use std::sync::Arc;

use parking_lot::Mutex;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::ClientConfig;

/// What the system's part of the trust store is read from.
type Key = (Option<OsString>, Option<OsString>);

/// The last configuration built, with its key. Only ever `try_lock`ed: a
/// client is never kept waiting for it, and a lock left held by a thread
/// that `fork()` did not copy cannot hang the child.
static CACHE: Mutex<Option<(Key, ClientConfig)>> = Mutex::new(None);

/// The rustls configuration of a verifying client (HTTP/1.1 only, as the
/// anchor's httpx without `http2=True`).
pub fn verifying_config() -> Result<ClientConfig, rustls::Error> {
    let key = (
        std::env::var_os("SSL_CERT_FILE"),
        std::env::var_os("SSL_CERT_DIR"),
    );
    let mut config = cached_or_build(&CACHE, key, build)?;
    config.resumption = Resumption::default();
    Ok(config)
}

fn cached_or_build(
    cache: &Mutex<Option<(Key, ClientConfig)>>,
    key: Key,
    build: impl FnOnce() -> Result<ClientConfig, rustls::Error>,
) -> Result<ClientConfig, rustls::Error> {
    if let Some(guard) = cache.try_lock() {
        if let Some((k, config)) = guard.as_ref() {
            if *k == key {
                return Ok(config.clone());
            }
        }
    }
    let config = build()?;
    if let Some(mut guard) = cache.try_lock() {
        *guard = Some((key, config.clone()));
    }
    Ok(config)
}

/// The process's rustls crypto provider, installed first if none is: ring,
/// unless the application installed another, which every client then uses
/// (reqwest's unverified clients take the installed one too).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(p) = CryptoProvider::get_default() {
        return p.clone();
    }
    // Err: another thread installed one first, which serves as well.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn build() -> Result<ClientConfig, rustls::Error> {
    let provider = crypto_provider();
    let mozilla = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned();
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(mozilla, provider.clone())?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn every_mozilla_root_is_accepted() {
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) =
            store.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        assert!(added > 100, "{added} roots");
        assert_eq!(ignored, 0);
    }

    #[test]
    fn the_configuration_builds_and_speaks_http1_only() {
        let config = verifying_config().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert!(config.enable_sni);
    }

    #[test]
    fn built_once_per_key() {
        let cache = Mutex::new(None);
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            build()
        };
        let a: Key = (Some("/a.pem".into()), None);
        let b: Key = (None, Some("/certs".into()));
        cached_or_build(&cache, a.clone(), build).unwrap();
        cached_or_build(&cache, a.clone(), build).unwrap();
        assert_eq!(builds.get(), 1);
        cached_or_build(&cache, b, build).unwrap();
        assert_eq!(builds.get(), 2);
        cached_or_build(&cache, a, build).unwrap();
        assert_eq!(builds.get(), 3);
    }

    #[test]
    fn a_held_cache_never_blocks() {
        let cache = Mutex::new(None);
        let _held = cache.lock();
        let config = cached_or_build(&cache, (None, None), build).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }
}

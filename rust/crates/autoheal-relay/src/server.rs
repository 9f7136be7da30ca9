//! Serving [`crate::app`] on a socket, over HTTP or HTTPS (rustls), with graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;

use crate::config::Config;
use crate::executor::Executor;
use crate::relay::{Relay, StartError};

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The relay could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The certificate or key cannot be used.
    #[error("TLS: {path}: {message}")]
    Tls {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The listener failed (address in use, permissions...).
    #[error("serving on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Starts the relay and serves it until `shutdown` completes; then stops accepting, lets
/// in-flight requests finish (up to `server.shutdown_grace_secs`) and stops the pipeline.
pub async fn serve(
    cfg: &Config,
    executor: Arc<dyn Executor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let relay = Relay::start(cfg, executor)?;
    let handle = axum_server::Handle::new();
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown.await;
            tracing::info!("stopping: no new connections, finishing in-flight requests");
            handle.graceful_shutdown(Some(grace));
        }
    });
    let router = crate::app(relay.state()).into_make_service();
    let header_timeout = Duration::from_millis(cfg.server.header_read_timeout_ms);
    let addr = cfg.server.listen;
    let served = match tls {
        Some(tls) => {
            let mut server = axum_server::bind_rustls(addr, tls).handle(handle);
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            tracing::info!(%addr, "listening (https)");
            server.serve(router).await
        }
        None => {
            let mut server = axum_server::bind(addr).handle(handle);
            server
                .http_builder()
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            tracing::info!(%addr, "listening (http)");
            server.serve(router).await
        }
    };
    relay.shutdown().await;
    served.map_err(|source| ServeError::Listen { addr, source })
}

/// Loads a PEM certificate chain and private key into a rustls server config (ring provider,
/// TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN).
pub fn tls_config(cert: &Path, key: &Path) -> Result<RustlsConfig, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |path: &Path, message: String| ServeError::Tls {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private_key)
        .map_err(|e| {
            tls_err(
                key,
                format!("certificate and key do not match or are unusable: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_tls_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = tls_config(&missing, &missing).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = tls_config(&empty, &empty).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
    }
}

//! Serving [`crate::app`] on a socket, over HTTP/1.1 or HTTPS (rustls), with graceful shutdown.
//!
//! HTTP/1.1 only (Alertmanager and Grafana use it): a connection that has not sent a complete
//! request head within `header_read_timeout_ms` of being accepted (or of its previous request)
//! is closed, silent or trickling, and at most `max_connections` are open at once (beyond that
//! a new connection is closed at once), so that idle sockets cannot use up the descriptors.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

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

/// Binds `server.listen`, then serves as [`serve_on`] does.
pub async fn serve(
    cfg: &Config,
    executor: Arc<dyn Executor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = cfg.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    serve_on(listener, cfg, executor, shutdown).await
}

/// Starts the relay and serves it on `listener` until `shutdown` completes; then stops
/// accepting, lets in-flight requests finish (up to `server.shutdown_grace_secs`) and stops the
/// pipeline.
pub async fn serve_on(
    listener: TcpListener,
    cfg: &Config,
    executor: Arc<dyn Executor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(cert), Some(key)) => Some(tls_config(cert, key)?),
        _ => None,
    };
    let relay = Relay::start(cfg, executor)?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: cfg.server.listen,
        source,
    })?;
    tracing::info!(%addr, tls = tls.is_some(), "listening");
    let connections = Connections {
        router: crate::app(relay.state()),
        tls,
        header_timeout: Duration::from_millis(cfg.server.header_read_timeout_ms),
        slots: Arc::new(Semaphore::new(cfg.server.max_connections)),
    };
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or memory: back off rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = connections.slots.clone().try_acquire_owned() else {
            relay.state().metrics().connections_refused.inc();
            tracing::debug!("connection limit reached; closing a new connection");
            continue;
        };
        let connections = connections.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            connections.handle(stream, watcher).await;
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("stopping: no new connections, finishing in-flight requests");
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests still running after the grace period; stopping anyway");
    }
    relay.shutdown().await;
    Ok(())
}

/// What each accepted connection needs.
#[derive(Clone)]
struct Connections {
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    slots: Arc<Semaphore>,
}

impl Connections {
    async fn handle(
        &self,
        stream: tokio::net::TcpStream,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        match &self.tls {
            None => self.serve_http(stream, watcher).await,
            // The handshake gets the same deadline as a request head.
            Some(tls) => {
                match tokio::time::timeout(self.header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => self.serve_http(stream, watcher).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            }
        }
    }

    async fn serve_http<S>(&self, stream: S, watcher: hyper_util::server::graceful::Watcher)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let service = TowerToHyperService::new(self.router.clone());
        let connection = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection closed with an error");
        }
    }
}

/// Loads a PEM certificate chain and private key into a rustls acceptor (ring provider,
/// TLS 1.2 and 1.3, HTTP/1.1 by ALPN).
pub fn tls_config(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_tls_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = tls_config(&missing, &missing).err().unwrap().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let err = tls_config(&empty, &empty).err().unwrap().to_string();
        assert!(err.contains("no certificate"), "{err}");
    }
}

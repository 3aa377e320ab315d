//! HTTPS on the webhook listener (SPEC §10): `tls: { cert, key }` served
//! with rustls. The pair is re-read when either file changes (checked every
//! [`CHECK_EVERY`], following symlinks, so a Kubernetes secret swap or a
//! certbot renewal is picked up); a pair that fails to load leaves the
//! previous one in use, and says so in the log and in
//! `hookflow_tls_reloads_total{outcome}`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::shutdown::Shutdown;

/// How often the files are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Why a certificate pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate chain {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read the private key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the certificate and key do not form a usable pair: {0}")]
    Pair(String),
}

/// The pair in use, swapped atomically on reload.
#[derive(Debug)]
pub struct Reloading {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
    seen: Mutex<Fingerprint>,
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Loads the pair (an error stops `serve` at start) and builds the
/// acceptor that always hands out the current one.
pub fn acceptor(files: &TlsFiles) -> Result<(TlsAcceptor, Arc<Reloading>), TlsError> {
    let key = load(files)?;
    let reloading = Arc::new(Reloading {
        files: files.clone(),
        current: ArcSwap::from(key),
        seen: Mutex::new(fingerprint(files)),
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Pair(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(reloading.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), reloading))
}

impl Reloading {
    /// Re-reads the pair if a file changed; keeps the old one on failure.
    pub fn reload_if_changed(&self) {
        let now = fingerprint(&self.files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return;
            }
            *seen = now;
        }
        match load(&self.files) {
            Ok(key) => {
                self.current.store(key);
                metrics::counter!("hookflow_tls_reloads_total", "outcome" => "ok").increment(1);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                metrics::counter!("hookflow_tls_reloads_total", "outcome" => "failed").increment(1);
                tracing::error!(error = %e, "TLS certificate not reloaded; the previous one stays in use");
            }
        }
    }

    /// Looks at the files every [`CHECK_EVERY`] until shutdown.
    pub fn watch(self: Arc<Self>, mut shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECK_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.wait() => return,
                    _ = tick.tick() => {
                        let me = self.clone();
                        // File reads and key parsing are blocking work.
                        let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
                    }
                }
            }
        })
    }
}

/// What tells a file changed: modification time, length and inode of each
/// (after following symlinks).
type Fingerprint = Vec<Option<(SystemTime, u64, u64)>>;

fn fingerprint(files: &TlsFiles) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    [&files.cert, &files.key]
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
}

fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Key {
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key =
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| TlsError::Pair(e.to_string()))?;
    Ok(Arc::new(key))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Cert {
        path: path.to_path_buf(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if chain.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(chain)
}

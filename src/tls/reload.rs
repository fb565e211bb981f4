//! The served certificate, swapped when its files change: new handshakes get it, open connections go on.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::{certificate_info, pair, read, Part, TlsError, TlsSettings};

/// The certificate and key new handshakes get. The pair is swapped whole, so a handshake sees the
/// old pair or the new one, never half of each; an established connection does not look here
/// again, so a reload drops nobody.
#[derive(Debug)]
pub struct Served {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Served {
    pub(super) fn new(key: CertifiedKey) -> Self {
        Self { current: RwLock::new(Arc::new(key)) }
    }

    fn replace(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }
}

impl ResolvesServerCert for Served {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A clone of the Arc under a read lock that is never held for longer: handshakes on every
        // worker share it, and the only writer is the reload, every few seconds at most.
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The files' contents as last loaded, as a digest: the key's bytes are not kept around.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seen([u8; 32]);

/// Both files, read now, and the digest of what was read.
fn read_files(settings: &TlsSettings) -> Result<(Seen, Vec<u8>, Vec<u8>), TlsError> {
    let cert = read(Part::Certificate, &settings.cert)?;
    let key = read(Part::Key, &settings.key)?;
    let mut digest = Sha256::new();
    // Length-prefixed, so the same bytes split differently between the files still differ.
    digest.update((cert.len() as u64).to_be_bytes());
    digest.update(&cert);
    digest.update(&key);
    Ok((Seen(digest.finalize().into()), cert, key))
}

/// The pair the files hold now, and what they held.
pub(super) fn load(
    settings: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, Seen), TlsError> {
    let (seen, cert, key) = read_files(settings)?;
    let pair = pair((&settings.cert, &settings.key), (&cert, &key), provider)?;
    Ok((pair, seen))
}

/// Polls the certificate files every `reload_interval` and swaps a new pair in. It runs on a
/// thread of its own: two small reads every few seconds need no runtime, and it cannot be
/// starved by (or starve) the HTTP workers. The `App` owns it and drops it after the server has
/// stopped; dropping it stops the thread at once and waits for it.
pub struct Reloader {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reloader {
    pub(super) fn spawn(
        served: Arc<Served>,
        seen: Seen,
        settings: TlsSettings,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("regbridge-tls-reload".into())
            .spawn(move || watch(&served, seen, &settings, &provider, &stopped))
            .ok();
        if thread.is_none() {
            tracing::warn!("could not start the TLS reload thread; the certificate is served as loaded");
        }
        Self { stop: Some(stop), thread }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread's wait with `Disconnected`.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The reload loop. A pair that cannot be used (a file missing mid-rotation, a key that does not
/// match the certificate yet) is logged once and the old pair served on; the next poll tries
/// again, so a rotation written file by file settles as soon as both files are in.
fn watch(
    served: &Served,
    mut seen: Seen,
    settings: &TlsSettings,
    provider: &CryptoProvider,
    stopped: &mpsc::Receiver<()>,
) {
    let mut reported: Option<String> = None;
    loop {
        match stopped.recv_timeout(settings.reload_interval) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let attempt = read_files(settings).and_then(|(now, cert, key)| {
            if now == seen {
                return Ok(None);
            }
            let pair = pair((&settings.cert, &settings.key), (&cert, &key), provider)?;
            Ok(Some((now, pair)))
        });
        match attempt {
            Ok(None) => {}
            Ok(Some((now, pair))) => {
                let info = certificate_info(&pair.cert[0]);
                served.replace(pair);
                seen = now;
                reported = None;
                let cert = settings.cert.display();
                tracing::info!(%cert, certificate = %info, "TLS certificate reloaded for new connections");
            }
            Err(e) => {
                let problem = e.to_string();
                if reported.as_ref() != Some(&problem) {
                    tracing::warn!(error = %problem, "TLS certificate not reloaded; the previous one stays");
                    reported = Some(problem);
                }
            }
        }
    }
}

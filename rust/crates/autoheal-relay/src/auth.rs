//! Authentication: bearer token, basic auth and Grafana's HMAC signature for the webhooks, a
//! separate admin token for the admin endpoints, all compared in constant time. Secrets are
//! read from files once, at startup, and only from files no one else can read.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::{self, HeaderMap};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, HmacConfig};
use crate::model::UsedSignature;

/// Why authentication failed (or could not be set up).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No acceptable credentials in the request.
    #[error("missing or wrong credentials")]
    Unauthorized,
    /// The HMAC signature is missing, malformed or wrong.
    #[error("bad or missing signature")]
    BadSignature,
    /// The signature timestamp is missing, malformed or too far from now.
    #[error("bad or stale signature timestamp")]
    StaleTimestamp,
    /// This signature was already accepted within the skew window: a replay.
    #[error("signature already used")]
    Replayed,
    /// The admin endpoints need the admin token, and none is configured.
    #[error("the admin endpoints are off: set [auth] admin_token_file to use them")]
    AdminDisabled,
    /// A secret file cannot be used.
    #[error("cannot read secret file {path}: {message}")]
    SecretFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Loaded credentials.
#[derive(Clone, Default)]
pub struct Authenticator {
    disabled: bool,
    bearer: Option<Vec<u8>>,
    basic: Vec<(Vec<u8>, Vec<u8>)>,
    hmac: Option<LoadedHmac>,
    admin: Option<Vec<u8>>,
}

#[derive(Clone)]
struct LoadedHmac {
    secret: Vec<u8>,
    header: String,
    timestamp_header: Option<String>,
    max_skew_secs: u64,
    /// Signatures accepted lately, with the time (s) after which they are stale anyway. Only
    /// valid signatures get here, so its size follows Grafana's own rate.
    seen: Arc<Mutex<HashMap<Vec<u8>, u64>>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Authenticator")
            .field("disabled", &self.disabled)
            .field("bearer", &self.bearer.is_some())
            .field("basic_users", &self.basic.len())
            .field("hmac", &self.hmac.as_ref().map(|h| &h.header))
            .field("admin", &self.admin.is_some())
            .finish()
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    let err = |message: String| AuthError::SecretFile {
        path: path.to_owned(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mode = file
        .metadata()
        .map_err(|e| err(e.to_string()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(err(format!(
            "group or others may read it (mode {:o}); make it readable by the relay's user only (chmod 600)",
            mode & 0o777
        )));
    }
    let text = std::io::read_to_string(file).map_err(|e| err(e.to_string()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(err("file is empty".into()));
    }
    Ok(secret.as_bytes().to_vec())
}

impl Authenticator {
    /// Loads the secrets named in the config.
    pub fn load(cfg: &AuthConfig) -> Result<Self, AuthError> {
        let bearer = cfg
            .bearer_token_file
            .as_deref()
            .map(read_secret)
            .transpose()?;
        let mut basic = Vec::new();
        if let Some(path) = &cfg.basic_auth_file {
            let text =
                String::from_utf8(read_secret(path)?).map_err(|e| AuthError::SecretFile {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let line_err = |message: &str| AuthError::SecretFile {
                    path: path.clone(),
                    message: format!("line {}: {message}", n + 1),
                };
                let (user, pass) = line
                    .split_once(':')
                    .ok_or_else(|| line_err("expected user:password"))?;
                if user.is_empty() || pass.is_empty() {
                    return Err(line_err("empty user name or password"));
                }
                basic.push((user.as_bytes().to_vec(), pass.as_bytes().to_vec()));
            }
        }
        let hmac = cfg
            .grafana_hmac
            .as_ref()
            .map(LoadedHmac::load)
            .transpose()?;
        let admin = cfg
            .admin_token_file
            .as_deref()
            .map(read_secret)
            .transpose()?;
        if let (Some(admin), Some(path)) = (&admin, &cfg.admin_token_file) {
            let shared = bearer.as_ref() == Some(admin)
                || basic.iter().any(|(_, pass)| pass == admin)
                || hmac.as_ref().is_some_and(|h| &h.secret == admin);
            if shared {
                return Err(AuthError::SecretFile {
                    path: path.clone(),
                    message: "the admin token must differ from the webhook senders' secrets".into(),
                });
            }
        }
        Ok(Self {
            disabled: cfg.allow_unauthenticated,
            bearer,
            basic,
            hmac,
            admin,
        })
    }

    /// No authentication at all (explicitly configured).
    pub fn disabled() -> Self {
        Self {
            disabled: true,
            ..Self::default()
        }
    }

    /// Checks the `Authorization` header against the bearer token and basic users.
    pub fn check_headers(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        if self.disabled {
            return Ok(());
        }
        let Some(value) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(AuthError::Unauthorized);
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(token) = &self.bearer {
                if bool::from(token.as_slice().ct_eq(rest.as_bytes())) {
                    return Ok(());
                }
            }
        } else if scheme.eq_ignore_ascii_case("basic") && !self.basic.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| AuthError::Unauthorized)?;
            if let Some(colon) = decoded.iter().position(|b| *b == b':') {
                let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
                // Check every entry so the time taken does not reveal which user exists.
                let mut ok = subtle::Choice::from(0);
                for (u, p) in &self.basic {
                    ok |= u.as_slice().ct_eq(user) & p.as_slice().ct_eq(pass);
                }
                if bool::from(ok) {
                    return Ok(());
                }
            }
        }
        Err(AuthError::Unauthorized)
    }

    /// Checks the admin token: the webhook senders' credentials do not open the admin
    /// endpoints (without authentication at all, `allow_unauthenticated`, nothing does either
    /// unless an admin token is set).
    pub fn check_admin(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let Some(admin) = &self.admin else {
            return if self.disabled {
                Ok(())
            } else {
                Err(AuthError::AdminDisabled)
            };
        };
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match token {
            Some(token) if bool::from(admin.as_slice().ct_eq(token.as_bytes())) => Ok(()),
            _ => Err(AuthError::Unauthorized),
        }
    }

    /// Whether a Grafana signature is configured (then `/hooks/grafana` requires it).
    pub fn has_hmac(&self) -> bool {
        self.hmac.is_some()
    }

    /// Refuses a request that carries no signature (or, when one is required, no timestamp),
    /// before its body is read.
    pub fn check_hmac_headers(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let Some(h) = &self.hmac else { return Ok(()) };
        if !headers.contains_key(h.header.as_str()) {
            return Err(AuthError::BadSignature);
        }
        match &h.timestamp_header {
            Some(ts) if !headers.contains_key(ts.as_str()) => Err(AuthError::StaleTimestamp),
            _ => Ok(()),
        }
    }

    /// Checks Grafana's HMAC-SHA256 signature over `timestamp:body` (or the body alone when
    /// the timestamp is turned off), and that it was not accepted before within the skew window.
    /// The signature returned is to be journaled with the alerts and then
    /// [remembered](Self::remember) (a request refused with a 503 may be sent again as it was).
    pub fn check_hmac(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: u64,
    ) -> Result<Option<UsedSignature>, AuthError> {
        let Some(h) = &self.hmac else { return Ok(None) };
        let signature = headers
            .get(h.header.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| hex::decode(v.trim()).ok())
            .ok_or(AuthError::BadSignature)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&h.secret).map_err(|_| AuthError::BadSignature)?;
        let mut stale_after = now_secs.saturating_add(h.max_skew_secs);
        if let Some(ts_header) = &h.timestamp_header {
            let ts = headers
                .get(ts_header.as_str())
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthError::StaleTimestamp)?;
            let ts_secs: u64 = ts.trim().parse().map_err(|_| AuthError::StaleTimestamp)?;
            if ts_secs.abs_diff(now_secs) > h.max_skew_secs {
                return Err(AuthError::StaleTimestamp);
            }
            stale_after = ts_secs.saturating_add(h.max_skew_secs);
            mac.update(ts.trim().as_bytes());
            mac.update(b":");
        }
        mac.update(body);
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)?;
        let mut seen = h
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|_, until| *until >= now_secs);
        if seen.contains_key(&signature) {
            return Err(AuthError::Replayed);
        }
        Ok(Some(UsedSignature {
            mac: signature,
            stale_after,
        }))
    }

    /// Records an accepted signature: the same request sent again within the skew window is
    /// then refused as a replay.
    pub fn remember(&self, signature: UsedSignature) {
        self.remember_all([signature]);
    }

    /// Records signatures accepted before a restart (from the journal).
    pub fn remember_all(&self, signatures: impl IntoIterator<Item = UsedSignature>) {
        if let Some(h) = &self.hmac {
            let mut seen = h
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for s in signatures {
                seen.insert(s.mac, s.stale_after);
            }
        }
    }
}

impl LoadedHmac {
    fn load(cfg: &HmacConfig) -> Result<Self, AuthError> {
        Ok(Self {
            secret: read_secret(&cfg.secret_file)?,
            header: cfg.header.clone(),
            timestamp_header: Some(cfg.timestamp_header.clone()).filter(|t| !t.is_empty()),
            max_skew_secs: cfg.max_skew_secs,
            seen: Arc::default(),
        })
    }
}

/// Hex HMAC-SHA256 of `message` (what Grafana puts in the signature header).
pub fn sign(secret: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn write_secret(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn auth_config(dir: &Path) -> AuthConfig {
        write_secret(&dir.join("token"), "s3cret-token\n");
        write_secret(&dir.join("users"), "# comment\nam:pa:ss\nother:x\n");
        write_secret(&dir.join("hmac"), "hmac-key");
        write_secret(&dir.join("admin"), "admin-token");
        AuthConfig {
            allow_unauthenticated: false,
            bearer_token_file: Some(dir.join("token")),
            basic_auth_file: Some(dir.join("users")),
            admin_token_file: Some(dir.join("admin")),
            grafana_hmac: Some(HmacConfig {
                secret_file: dir.join("hmac"),
                header: "X-Sig".into(),
                timestamp_header: "X-Ts".into(),
                max_skew_secs: 60,
            }),
        }
    }

    fn auth_with(dir: &Path) -> Authenticator {
        Authenticator::load(&auth_config(dir)).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_and_basic() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth_with(dir.path());
        assert!(a
            .check_headers(&headers(&[("authorization", "Bearer s3cret-token")]))
            .is_ok());
        assert!(a
            .check_headers(&headers(&[("authorization", "bearer s3cret-token")]))
            .is_ok());
        assert!(a
            .check_headers(&headers(&[("authorization", "Bearer s3cret-toke")]))
            .is_err());
        assert!(a
            .check_headers(&headers(&[("authorization", "Bearer s3cret-token2")]))
            .is_err());
        assert!(a.check_headers(&headers(&[])).is_err());
        let basic = |u: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(u)
            )
        };
        // The password may contain a colon; only the first one splits.
        assert!(a
            .check_headers(&headers(&[("authorization", &basic("am:pa:ss"))]))
            .is_ok());
        assert!(a
            .check_headers(&headers(&[("authorization", &basic("am:pa"))]))
            .is_err());
        assert!(a
            .check_headers(&headers(&[("authorization", &basic("other:y"))]))
            .is_err());
        assert!(a
            .check_headers(&headers(&[("authorization", "Basic !!!")]))
            .is_err());
    }

    #[test]
    fn hmac_with_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth_with(dir.path());
        let body = br#"{"alerts":[]}"#;
        let good = sign(b"hmac-key", b"1000:{\"alerts\":[]}");
        let checked = a
            .check_hmac(&headers(&[("x-sig", &good), ("x-ts", "1000")]), body, 1010)
            .unwrap()
            .unwrap();
        // Once accepted, the same signed request is a replay until its timestamp is stale.
        a.remember(checked);
        assert!(matches!(
            a.check_hmac(&headers(&[("x-sig", &good), ("x-ts", "1000")]), body, 1020),
            Err(AuthError::Replayed)
        ));
        assert!(matches!(
            a.check_hmac(&headers(&[("x-sig", &good), ("x-ts", "1000")]), body, 2000),
            Err(AuthError::StaleTimestamp)
        ));
        assert!(matches!(
            a.check_hmac(&headers(&[("x-sig", &good), ("x-ts", "1001")]), body, 1001),
            Err(AuthError::BadSignature)
        ));
        assert!(a
            .check_hmac(&headers(&[("x-sig", &good), ("x-ts", "1000")]), b"{}", 1000)
            .is_err());
        assert!(a
            .check_hmac(&headers(&[("x-sig", "zz"), ("x-ts", "1000")]), body, 1000)
            .is_err());
        assert!(a
            .check_hmac(&headers(&[("x-ts", "1000")]), body, 1000)
            .is_err());
        // Without the signature or the timestamp, the body is not even read.
        assert!(matches!(
            a.check_hmac_headers(&headers(&[("x-ts", "1000")])),
            Err(AuthError::BadSignature)
        ));
        assert!(matches!(
            a.check_hmac_headers(&headers(&[("x-sig", &good)])),
            Err(AuthError::StaleTimestamp)
        ));
        assert!(a
            .check_hmac_headers(&headers(&[("x-sig", &good), ("x-ts", "1")]))
            .is_ok());
    }

    #[test]
    fn the_admin_endpoints_take_the_admin_token_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth_with(dir.path());
        assert!(a
            .check_admin(&headers(&[("authorization", "Bearer admin-token")]))
            .is_ok());
        for sender in [
            "Bearer s3cret-token",
            "Bearer admin-toke",
            "Basic YW06cGE6c3M=",
        ] {
            assert!(a
                .check_admin(&headers(&[("authorization", sender)]))
                .is_err());
        }
        // ... and the admin token opens no webhook.
        assert!(a
            .check_headers(&headers(&[("authorization", "Bearer admin-token")]))
            .is_err());
        let mut cfg = auth_config(dir.path());
        cfg.admin_token_file = None;
        let without = Authenticator::load(&cfg).unwrap();
        assert!(matches!(
            without.check_admin(&headers(&[("authorization", "Bearer s3cret-token")])),
            Err(AuthError::AdminDisabled)
        ));
        let mut cfg = auth_config(dir.path());
        write_secret(&dir.path().join("admin"), "s3cret-token");
        cfg.admin_token_file = Some(dir.path().join("admin"));
        let err = Authenticator::load(&cfg).unwrap_err().to_string();
        assert!(err.contains("must differ"), "{err}");
    }

    #[test]
    fn secret_files_others_can_read_and_empty_passwords_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = auth_config(dir.path());
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(
                dir.path().join("token"),
                std::fs::Permissions::from_mode(mode),
            )
            .unwrap();
            let err = Authenticator::load(&cfg).unwrap_err().to_string();
            assert!(err.contains("token") && err.contains("chmod 600"), "{err}");
        }
        std::fs::set_permissions(
            dir.path().join("token"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        assert!(Authenticator::load(&cfg).is_ok());
        write_secret(&dir.path().join("users"), "am:pw\nnopass:\n");
        let err = Authenticator::load(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("users") && err.contains("line 2") && err.contains("empty"),
            "{err}"
        );
    }

    #[test]
    fn empty_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_secret(&dir.path().join("token"), "  \n");
        let err = Authenticator::load(&AuthConfig {
            bearer_token_file: Some(dir.path().join("token")),
            ..AuthConfig::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth_with(dir.path());
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("hmac-key"),
            "{shown}"
        );
    }
}

//! Authentication: bearer token, basic auth and Grafana's HMAC signature, all compared in
//! constant time. Secrets are read from files once, at startup.

use std::path::Path;

use axum::http::{self, HeaderMap};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, HmacConfig};

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
}

#[derive(Clone)]
struct LoadedHmac {
    secret: Vec<u8>,
    header: String,
    timestamp_header: Option<String>,
    max_skew_secs: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets.
        f.debug_struct("Authenticator")
            .field("disabled", &self.disabled)
            .field("bearer", &self.bearer.is_some())
            .field("basic_users", &self.basic.len())
            .field("hmac", &self.hmac.as_ref().map(|h| &h.header))
            .finish()
    }
}

fn read_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    let err = |message: String| AuthError::SecretFile {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
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
                let (user, pass) = line.split_once(':').ok_or_else(|| AuthError::SecretFile {
                    path: path.clone(),
                    message: format!("line {}: expected user:password", n + 1),
                })?;
                basic.push((user.as_bytes().to_vec(), pass.as_bytes().to_vec()));
            }
        }
        let hmac = cfg
            .grafana_hmac
            .as_ref()
            .map(LoadedHmac::load)
            .transpose()?;
        Ok(Self {
            disabled: cfg.allow_unauthenticated,
            bearer,
            basic,
            hmac,
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

    /// Whether a Grafana signature is configured (then `/hooks/grafana` requires it).
    pub fn has_hmac(&self) -> bool {
        self.hmac.is_some()
    }

    /// Checks Grafana's HMAC-SHA256 signature over the body (or `timestamp:body`).
    pub fn check_hmac(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_secs: u64,
    ) -> Result<(), AuthError> {
        let Some(h) = &self.hmac else { return Ok(()) };
        let signature = headers
            .get(h.header.as_str())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| hex::decode(v.trim()).ok())
            .ok_or(AuthError::BadSignature)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&h.secret).map_err(|_| AuthError::BadSignature)?;
        if let Some(ts_header) = &h.timestamp_header {
            let ts = headers
                .get(ts_header.as_str())
                .and_then(|v| v.to_str().ok())
                .ok_or(AuthError::StaleTimestamp)?;
            let ts_secs: u64 = ts.trim().parse().map_err(|_| AuthError::StaleTimestamp)?;
            if ts_secs.abs_diff(now_secs) > h.max_skew_secs {
                return Err(AuthError::StaleTimestamp);
            }
            mac.update(ts.trim().as_bytes());
            mac.update(b":");
        }
        mac.update(body);
        mac.verify_slice(&signature)
            .map_err(|_| AuthError::BadSignature)
    }
}

impl LoadedHmac {
    fn load(cfg: &HmacConfig) -> Result<Self, AuthError> {
        Ok(Self {
            secret: read_secret(&cfg.secret_file)?,
            header: cfg.header.clone(),
            timestamp_header: cfg.timestamp_header.clone(),
            max_skew_secs: cfg.max_skew_secs,
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

    fn auth_with(dir: &Path) -> Authenticator {
        std::fs::write(dir.join("token"), "s3cret-token\n").unwrap();
        std::fs::write(dir.join("users"), "# comment\nam:pa:ss\nother:x\n").unwrap();
        std::fs::write(dir.join("hmac"), "hmac-key").unwrap();
        Authenticator::load(&AuthConfig {
            allow_unauthenticated: false,
            bearer_token_file: Some(dir.join("token")),
            basic_auth_file: Some(dir.join("users")),
            grafana_hmac: Some(HmacConfig {
                secret_file: dir.join("hmac"),
                header: "X-Sig".into(),
                timestamp_header: Some("X-Ts".into()),
                max_skew_secs: 60,
            }),
        })
        .unwrap()
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
        assert!(a
            .check_hmac(&headers(&[("x-sig", &good), ("x-ts", "1000")]), body, 1010)
            .is_ok());
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
    }

    #[test]
    fn empty_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "  \n").unwrap();
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

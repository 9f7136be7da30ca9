//! The relay's configuration file (TOML), its defaults and its semantic checks.
//!
//! Syntax errors come from the `toml` crate and carry line and column; semantic errors name the
//! offending key (`rules[2].match_re.severity`) so that `check-config` can point at it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::label::validate_name;
use crate::lifecycle::membership::Membership;
use crate::lifecycle::policy::{LifecyclePolicy, PanicPolicy};
use crate::rules::{Rule, RuleConfig};
use crate::target::TargetsConfig;

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (message carries line and column).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and a caret under the offending text.
        message: String,
    },
    /// A value is well-formed but unusable.
    #[error("{path}: {key}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Dotted path of the offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// HTTP listener, limits and TLS.
    #[serde(default)]
    pub server: ServerConfig,
    /// Who may post webhooks and use the admin endpoints.
    pub auth: AuthConfig,
    /// The SQLite journal and audit log.
    #[serde(default)]
    pub journal: JournalConfig,
    /// How targets are read from alert labels.
    #[serde(default)]
    pub targets: TargetsConfig,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Coalescing window.
    #[serde(default)]
    pub coalesce: CoalesceConfig,
    /// Budget, breaker, pause, dry-run.
    #[serde(default)]
    pub guard: GuardConfig,
    /// What runs the playbook.
    pub executor: ExecutorConfig,
    /// Retries of failed runs.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Hold-down, health-gated and ramped restore, quarantine (each rule may set its own keys).
    #[serde(default)]
    pub lifecycle: LifecyclePolicy,
    /// When a backend is in panic.
    #[serde(default)]
    pub panic: PanicPolicy,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
}

/// HTTP listener settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest accepted request body; bigger bodies get 413.
    pub max_body_bytes: usize,
    /// Whole-request timeout (reading the body and journaling), in milliseconds.
    pub request_timeout_ms: u64,
    /// Time allowed to send the request headers, in milliseconds.
    pub header_read_timeout_ms: u64,
    /// Seconds to wait for in-flight requests on shutdown.
    pub shutdown_grace_secs: u64,
    /// Requests handled at once, all routes together; more get 503 at once (bounds memory:
    /// this times the body limit).
    pub max_concurrent_requests: usize,
    /// Connections open at once; a new one beyond this is closed at once (keep it well under
    /// the process's descriptor limit, `LimitNOFILE`).
    pub max_connections: usize,
    /// PEM certificate chain; with `tls_key`, enables HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9095)),
            max_body_bytes: 1024 * 1024,
            request_timeout_ms: 5_000,
            header_read_timeout_ms: 5_000,
            shutdown_grace_secs: 10,
            max_concurrent_requests: 1024,
            max_connections: 4096,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// Authentication. At least one method, or an explicit `allow_unauthenticated = true`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Run with no authentication at all (must be spelled out).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// File holding the bearer token (surrounding whitespace ignored).
    pub bearer_token_file: Option<PathBuf>,
    /// File of `user:password` lines for HTTP basic auth.
    pub basic_auth_file: Option<PathBuf>,
    /// Grafana's HMAC-SHA256 signature, checked on `/hooks/grafana`.
    pub grafana_hmac: Option<HmacConfig>,
    /// File holding the admin endpoints' bearer token (they are off without it, unless
    /// `allow_unauthenticated`); the webhook senders' credentials do not open them.
    pub admin_token_file: Option<PathBuf>,
}

/// Grafana webhook HMAC settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// File holding the shared secret.
    pub secret_file: PathBuf,
    /// Header carrying the hex signature.
    #[serde(default = "default_hmac_header")]
    pub header: String,
    /// Header carrying a Unix timestamp, required; the signed text is `timestamp:body`. Empty
    /// turns the timestamp off (the signed text is the body; a captured request can then be
    /// replayed once the dedup window has passed).
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
    /// Largest accepted clock difference for the timestamp, in seconds.
    #[serde(default = "default_max_skew")]
    pub max_skew_secs: u64,
}

fn default_hmac_header() -> String {
    "X-Grafana-Alerting-Signature".to_owned()
}

fn default_timestamp_header() -> String {
    "X-Grafana-Alerting-Signature-Timestamp".to_owned()
}

fn default_max_skew() -> u64 {
    300
}

/// Journal settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// SQLite database file (created if missing).
    pub path: PathBuf,
    /// Same (fingerprint, status, startsAt) within this many seconds is one event.
    pub dedup_ttl_secs: u64,
    /// Most requests folded into one commit.
    pub max_batch: usize,
    /// When a commit counts as done.
    pub synchronous: Synchronous,
    /// Finished history (events, decisions, runs) older than this many days is deleted.
    pub retention_days: u64,
}

/// SQLite's `synchronous` setting for the journal (WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Every commit is fsynced before the request is answered: survives power loss.
    #[default]
    Full,
    /// Commits reach the OS before the answer and are fsynced at checkpoints: survives a crash
    /// or kill of the relay, not a power loss or kernel crash. Much faster on slow disks.
    Normal,
}

impl Synchronous {
    /// The pragma value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
        }
    }
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("autoheal-relay.db"),
            dedup_ttl_secs: 3600,
            max_batch: 512,
            synchronous: Synchronous::Full,
            retention_days: 30,
        }
    }
}

/// Coalescing settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoalesceConfig {
    /// How long an intent for an idle fleet waits for others before the run starts; intents
    /// arriving while the fleet's run is in progress join its next run whatever this is.
    pub window_ms: u64,
}

impl Default for CoalesceConfig {
    fn default() -> Self {
        // Alertmanager sends the notifications of groups that changed together within a few
        // milliseconds of each other (at most 8 ms apart in the end-to-end tests' journals); a
        // longer wait only delays every first action.
        Self { window_ms: 10 }
    }
}

/// Safety settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    /// Never more than this many servers of one backend out at once.
    pub max_out_per_backend: usize,
    /// Never more than this percentage of a backend out (needs `backend_sizes`).
    pub max_out_percent: Option<u8>,
    /// Number of servers per backend, for the percentage budget (and panic).
    pub backend_sizes: BTreeMap<String, usize>,
    /// The servers of each backend: an alert without a `backend` label counts against its
    /// server's real backend, and an alert for a server in none of them takes no budget.
    pub servers: BTreeMap<String, Vec<String>>,
    /// Breaker: at most this many out-of-service actions per window...
    pub breaker_max_actions: usize,
    /// ...of this many seconds...
    pub breaker_window_secs: u64,
    /// ...else stop taking servers out for this many seconds.
    pub breaker_cooldown_secs: u64,
    /// Start paused (hold every action until resumed).
    pub paused: bool,
    /// While this file exists, the relay is paused.
    pub pause_file: Option<PathBuf>,
    /// Log decisions, run nothing.
    pub dry_run: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            max_out_per_backend: 1,
            max_out_percent: None,
            backend_sizes: BTreeMap::new(),
            servers: BTreeMap::new(),
            breaker_max_actions: 20,
            breaker_window_secs: 60,
            breaker_cooldown_secs: 300,
            paused: false,
            pause_file: None,
            dry_run: false,
        }
    }
}

/// Retries of the actions of a failed run.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries per action after a failed run (0: none).
    pub attempts: u32,
    /// Wait before a retry, in milliseconds.
    pub delay_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 2,
            delay_ms: 30_000,
        }
    }
}

/// Which executor runs the remediation.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "kebab-case")]
pub enum ExecutorConfig {
    /// `ansible-runner run DIR -p PLAYBOOK` per run.
    AnsibleRunner(AnsibleRunnerConfig),
    /// An AWX/AAP job template.
    Awx(AwxConfig),
    /// Record what would run, run nothing.
    DryRun,
}

/// ansible-runner executor settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnsibleRunnerConfig {
    /// The ansible-runner program.
    #[serde(default = "default_runner_binary")]
    pub binary: PathBuf,
    /// Playbook: a collection FQCN or a path.
    #[serde(default = "default_playbook")]
    pub playbook: String,
    /// Inventory file or directory.
    pub inventory: PathBuf,
    /// Host pattern passed as `--limit`.
    pub limit: Option<String>,
    /// Per-fleet `--limit` overrides.
    #[serde(default)]
    pub fleet_limits: BTreeMap<String, String>,
    /// Where private data directories are created, one per run.
    pub work_dir: PathBuf,
    /// Kill a run after this many seconds.
    #[serde(default = "default_run_timeout")]
    pub timeout_secs: u64,
    /// Environment set for ansible-runner (e.g. PATH, ANSIBLE_COLLECTIONS_PATH).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Private data dirs kept for inspection; older ones are deleted after each run.
    #[serde(default = "default_keep_runs")]
    pub keep_runs: usize,
    /// Run through a long-lived Python worker per fleet that calls `ansible_runner.run()`
    /// (no interpreter start per run); false: spawn the `ansible-runner` CLI for each run.
    #[serde(default = "default_resident")]
    pub resident: bool,
    /// Resident mode: keep the next run started ahead of time (playbook
    /// `autoheal.haproxy.standby`, waiting for its extra vars), so that a run does not wait for
    /// ansible-playbook to start and parse the inventory and playbooks.
    #[serde(default = "default_standby")]
    pub standby: bool,
    /// The Python that has ansible_runner, for the resident worker (default: the `python3`
    /// beside `binary`).
    pub python: Option<PathBuf>,
}

fn default_resident() -> bool {
    true
}

fn default_standby() -> bool {
    true
}

fn default_keep_runs() -> usize {
    200
}

fn default_runner_binary() -> PathBuf {
    PathBuf::from("ansible-runner")
}

fn default_playbook() -> String {
    "autoheal.haproxy.remediate".to_owned()
}

fn default_run_timeout() -> u64 {
    600
}

/// AWX executor settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwxConfig {
    /// Base URL, e.g. `https://awx.example.com`.
    pub url: String,
    /// Job template id.
    pub job_template_id: u64,
    /// File holding the OAuth2/personal access token.
    pub token_file: PathBuf,
    /// Optional `limit` sent with the launch (the template must prompt for it).
    pub limit: Option<String>,
    /// Poll interval, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// Give up waiting for the job after this many seconds.
    #[serde(default = "default_run_timeout")]
    pub timeout_secs: u64,
    /// Launch attempts when the connection is refused before the request is sent.
    #[serde(default = "default_launch_attempts")]
    pub launch_attempts: u32,
    /// Timeout of each HTTP request, in milliseconds.
    #[serde(default = "default_http_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_http_timeout_ms() -> u64 {
    30_000
}

fn default_poll_ms() -> u64 {
    2_000
}

fn default_launch_attempts() -> u32 {
    3
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info` or `autoheal_relay=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Config {
    /// Reads, parses and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks configuration text; `path` is only used in messages and to resolve
    /// relative paths against the file's directory.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(path)?;
        if let Some(dir) = path.parent() {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// The rules, compiled (their regexes were checked when the file was loaded).
    pub fn compiled_rules(&self) -> Vec<Rule> {
        crate::rules::compile(&self.rules)
    }

    /// The life-cycle policy of each rule that sets its own keys (checked by `validate`).
    pub fn rule_policies(&self) -> BTreeMap<String, LifecyclePolicy> {
        self.rules
            .iter()
            .filter_map(|r| {
                let keys = r.lifecycle.as_ref()?;
                let policy = self
                    .lifecycle
                    .overlay(keys)
                    .expect("validated lifecycle keys");
                Some((r.name.clone(), policy))
            })
            .collect()
    }

    /// The servers of each backend as configured (`guard.servers`, `guard.backend_sizes`).
    pub fn membership(&self) -> Membership {
        Membership::from_pairs(self.guard.servers.iter().flat_map(|(backend, servers)| {
            servers.iter().map(move |s| (backend.as_str(), s.as_str()))
        }))
        .with_sizes(&self.guard.backend_sizes)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let auth = &self.auth;
        let any_auth = auth.bearer_token_file.is_some()
            || auth.basic_auth_file.is_some()
            || auth.grafana_hmac.is_some();
        if !any_auth && !auth.allow_unauthenticated {
            return Err(invalid(
                "auth".into(),
                "no authentication configured; set bearer_token_file, basic_auth_file or grafana_hmac, \
                 or allow_unauthenticated = true to run without it"
                    .into(),
            ));
        }
        if any_auth && auth.allow_unauthenticated {
            return Err(invalid(
                "auth.allow_unauthenticated".into(),
                "contradicts the configured authentication methods".into(),
            ));
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(invalid(
                "server.tls_cert".into(),
                "tls_cert and tls_key go together".into(),
            ));
        }
        if self.server.max_concurrent_requests == 0 {
            return Err(invalid(
                "server.max_concurrent_requests".into(),
                "must be positive".into(),
            ));
        }
        if self.server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections".into(),
                "must be positive".into(),
            ));
        }
        if self.server.max_body_bytes == 0 {
            return Err(invalid(
                "server.max_body_bytes".into(),
                "must be positive".into(),
            ));
        }
        if self.journal.retention_days == 0 {
            return Err(invalid(
                "journal.retention_days".into(),
                "must be at least 1".into(),
            ));
        }
        if self.journal.max_batch == 0 {
            return Err(invalid(
                "journal.max_batch".into(),
                "must be positive".into(),
            ));
        }
        if self.coalesce.window_ms > 60_000 {
            return Err(invalid(
                "coalesce.window_ms".into(),
                "must be between 0 and 60000".into(),
            ));
        }
        if let Some(p) = self.guard.max_out_percent {
            if p > 100 {
                return Err(invalid(
                    "guard.max_out_percent".into(),
                    "must be at most 100".into(),
                ));
            }
        }
        if self.guard.breaker_max_actions == 0 || self.guard.breaker_window_secs == 0 {
            return Err(invalid(
                "guard.breaker_max_actions".into(),
                "breaker_max_actions and breaker_window_secs must be positive".into(),
            ));
        }
        for backend in self.guard.backend_sizes.keys() {
            validate_name(backend)
                .map_err(|e| invalid(format!("guard.backend_sizes.{backend}"), e.to_string()))?;
        }
        for (backend, servers) in &self.guard.servers {
            for name in std::iter::once(backend).chain(servers) {
                validate_name(name)
                    .map_err(|e| invalid(format!("guard.servers.{backend}"), e.to_string()))?;
            }
        }
        self.lifecycle
            .validate()
            .map_err(|e| invalid("lifecycle".into(), e.to_string()))?;
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(keys) = &rule.lifecycle {
                self.lifecycle
                    .overlay(keys)
                    .map_err(|e| invalid(format!("rules[{i}].lifecycle"), e))?;
            }
        }
        if self.panic.share_percent > 100 {
            return Err(invalid(
                "panic.share_percent".into(),
                "must be at most 100".into(),
            ));
        }
        self.targets
            .validate()
            .map_err(|(key, e)| invalid(format!("targets.{key}"), e.to_string()))?;
        crate::rules::validate(&self.rules).map_err(|e| invalid(e.key, e.message))?;
        match &self.executor {
            ExecutorConfig::AnsibleRunner(r) => {
                if r.playbook.trim().is_empty() {
                    return Err(invalid(
                        "executor.playbook".into(),
                        "must not be empty".into(),
                    ));
                }
                if r.timeout_secs == 0 {
                    return Err(invalid(
                        "executor.timeout_secs".into(),
                        "must be positive".into(),
                    ));
                }
            }
            ExecutorConfig::Awx(a) => {
                if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
                    return Err(invalid(
                        "executor.url".into(),
                        "must start with http:// or https://".into(),
                    ));
                }
                if a.launch_attempts == 0 || a.poll_interval_ms == 0 {
                    return Err(invalid(
                        "executor.launch_attempts".into(),
                        "launch_attempts and poll_interval_ms must be positive".into(),
                    ));
                }
            }
            ExecutorConfig::DryRun => {}
        }
        Ok(())
    }

    /// Relative paths in the file are relative to the file, not to the working directory.
    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        let fix_opt = |p: &mut Option<PathBuf>| {
            if let Some(p) = p {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        };
        fix(&mut self.journal.path);
        fix_opt(&mut self.server.tls_cert);
        fix_opt(&mut self.server.tls_key);
        fix_opt(&mut self.auth.bearer_token_file);
        fix_opt(&mut self.auth.basic_auth_file);
        fix_opt(&mut self.auth.admin_token_file);
        if let Some(h) = &mut self.auth.grafana_hmac {
            fix(&mut h.secret_file);
        }
        fix_opt(&mut self.guard.pause_file);
        match &mut self.executor {
            ExecutorConfig::AnsibleRunner(r) => {
                fix(&mut r.inventory);
                fix(&mut r.work_dir);
                // A playbook path (not a collection FQCN) is relative to the file too.
                if r.playbook.contains('/') && !r.playbook.starts_with('/') {
                    r.playbook = dir.join(&r.playbook).to_string_lossy().into_owned();
                }
            }
            ExecutorConfig::Awx(a) => fix(&mut a.token_file),
            ExecutorConfig::DryRun => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[auth]
allow_unauthenticated = true

[executor]
kind = "dry-run"

[[rules]]
name = "drain-on-cpu"
match = { alertname = "BackendCpuHigh" }
action = "drain"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/relay/relay.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.server.max_body_bytes, 1024 * 1024);
        assert_eq!(
            c.journal.path,
            PathBuf::from("/etc/relay/autoheal-relay.db")
        );
        assert_eq!(c.rules[0].fleet, "default");
        assert!(c.rules[0].restore);
    }

    #[test]
    fn lifecycle_keys_relay_wide_and_per_rule() {
        let text = format!(
            "{MINIMAL}[rules.lifecycle]\nquarantine_after = 5\n\n[lifecycle]\nhold_down_base_secs = 10\n\n\
             [panic]\nshare_percent = 75\n\n[guard.servers]\napp = [\"web1\", \"web2\"]\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.lifecycle.hold_down_base_secs, 10);
        assert_eq!(c.lifecycle.quarantine_after, 3);
        assert_eq!(c.panic.share_percent, 75);
        let rule = &c.rule_policies()["drain-on-cpu"];
        assert_eq!(rule.quarantine_after, 5);
        assert_eq!(
            rule.hold_down_base_secs, 10,
            "the relay-wide key applies under the rule's"
        );
        assert_eq!(c.membership().size_of("app"), Some(2));
        assert!(parse(MINIMAL).unwrap().rule_policies().is_empty());
    }

    #[test]
    fn bad_lifecycle_keys_are_refused_with_their_place() {
        let cases = [
            (
                format!("{MINIMAL}[rules.lifecycle]\nhold_down = 5\n"),
                "rules[0].lifecycle",
            ),
            (
                format!("{MINIMAL}[lifecycle]\nramp_percent = [50, 10]\n"),
                "lifecycle",
            ),
            (
                format!("{MINIMAL}[panic]\nshare_percent = 101\n"),
                "panic.share_percent",
            ),
            (
                format!("{MINIMAL}[guard.servers]\napp = [\"we b\"]\n"),
                "guard.servers.app",
            ),
        ];
        for (text, want) in cases {
            let err = parse(&text).unwrap_err();
            assert!(
                matches!(err, ConfigError::Invalid { ref key, .. } if key == want),
                "{want}: {err}"
            );
        }
    }

    #[test]
    fn syntax_error_names_line() {
        let err = parse("[auth]\nallow_unauthenticated = tru\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn unknown_key_names_line() {
        let text = MINIMAL.replace("action = \"drain\"", "action = \"drain\"\nrestor = false");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("line 12") && err.contains("restor"), "{err}");
    }

    #[test]
    fn missing_auth_is_refused() {
        let err = parse(&MINIMAL.replace("allow_unauthenticated = true", "")).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "auth"),
            "{err}"
        );
    }

    #[test]
    fn weight_action_needs_a_valid_weight() {
        let text = MINIMAL.replace(
            "action = \"drain\"",
            "action = \"weight\"\nweight = \"150%\"",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("rules[0].weight"), "{err}");
    }

    #[test]
    fn coalescing_window_may_be_zero_but_not_over_a_minute() {
        let zero = format!("{MINIMAL}\n[coalesce]\nwindow_ms = 0\n");
        assert_eq!(parse(&zero).unwrap().coalesce.window_ms, 0);
        let long = format!("{MINIMAL}\n[coalesce]\nwindow_ms = 60001\n");
        let err = parse(&long).unwrap_err();
        assert!(
            matches!(err, ConfigError::Invalid { ref key, .. } if key == "coalesce.window_ms"),
            "{err}"
        );
    }

    #[test]
    fn bad_regex_is_refused() {
        let text = MINIMAL.replace("action =", "match_re = { severity = \"(crit\" }\naction =");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("rules[0].match_re.severity"), "{err}");
    }

    #[test]
    fn documented_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../examples/relay.toml");
        let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.rules.len(), 2);
        assert!(
            matches!(c.executor, ExecutorConfig::AnsibleRunner(ref r) if r.playbook == "autoheal.haproxy.remediate")
        );
        assert_eq!(c.compiled_rules()[1].weight.as_deref(), Some("50%"));
        assert_eq!(
            c.lifecycle,
            LifecyclePolicy::default(),
            "the example shows the defaults"
        );
        assert_eq!(c.panic, PanicPolicy::default());
        assert_eq!(c.rule_policies()["drain-busy-node"].quarantine_after, 2);
    }

    #[test]
    fn regexes_are_anchored() {
        let text = MINIMAL.replace("action =", "match_re = { severity = \"crit\" }\naction =");
        let rules = parse(&text).unwrap().compiled_rules();
        let re = &rules[0].match_re[0].1;
        assert!(re.is_match("crit"));
        assert!(!re.is_match("critical"));
    }
}

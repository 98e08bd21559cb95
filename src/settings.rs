//! Configuration, layered with the `config` crate:
//!
//! 1. `config/default.toml`, built into the binary so it runs from any directory;
//! 2. `<config dir>/<FULFILMENT_ENV>.toml` when `FULFILMENT_ENV` is set and not empty (the directory is
//!    `FULFILMENT_CONFIG_DIR`, default `config`);
//! 3. environment variables `FULFILMENT__SECTION__KEY`, e.g. `FULFILMENT__AMQP__PREFETCH=32`.
//!
//! A wrong value stops the process at start with the key's name and what was expected.
//! Passwords in URLs are never printed.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::domain::StageName;
use crate::domain::documents::Seller;

/// The built-in defaults.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A source could not be read or a value has the wrong type; the message names the key.
    #[error("configuration is invalid: {0}")]
    Load(config::ConfigError),
    /// A value has the right type but is not acceptable.
    #[error("configuration key `{key}`: expected {expected}")]
    Invalid {
        /// The key, such as `amqp.namespace`.
        key: &'static str,
        /// What an acceptable value looks like.
        expected: &'static str,
    },
}

/// Where `FULFILMENT__SECTION__KEY` variables come from.
#[derive(Debug, Clone)]
pub enum EnvVars {
    /// The process environment.
    Process,
    /// The given variables only (for tests and tools).
    Given(HashMap<String, String>),
}

impl From<config::ConfigError> for SettingsError {
    fn from(error: config::ConfigError) -> Self {
        SettingsError::Load(error)
    }
}

/// All settings of a fulfilment process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The broker.
    pub amqp: AmqpSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// Retries of transient failures.
    pub retry: RetrySettings,
    /// The outbox relay.
    pub relay: RelaySettings,
    /// The timer scheduler.
    pub scheduler: SchedulerSettings,
    /// Business settings of the stages.
    pub stages: StageSettings,
    /// The review desk.
    pub review: ReviewSettings,
    /// Logging.
    pub log: LogSettings,
    /// Trace export.
    pub telemetry: TelemetrySettings,
    /// This process's metrics.
    pub metrics: MetricsSettings,
}

/// Where a process without the API serves its metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Address to serve `GET /metrics` on when the process does not serve the API (`run
    /// --no-api`); empty for none. A process with the API serves them there.
    pub listen: String,
}

/// Broker settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// The broker's URL; its password is redacted when printed.
    pub url: SecretUrl,
    /// Other nodes of the broker's cluster, comma-separated URLs tried in turn when the one in
    /// use cannot be reached (see [`AmqpSettings::addresses`]).
    pub failover_urls: String,
    /// Prefix of every exchange and queue name.
    pub namespace: String,
    /// Partitions of each stage's input (1: none; see [`crate::partitions`]).
    pub partitions: u16,
    /// Unacknowledged deliveries a stage worker holds at once.
    pub prefetch: u16,
    /// Most deliveries a stage worker handles in one database transaction.
    pub batch_size: usize,
    /// Milliseconds a busy stage worker waits for its batch to fill once it has the first
    /// delivery.
    pub batch_linger_ms: u64,
    /// Workers (consumers) of each stage in one process, each with its own batches.
    pub consumers: StageConsumers,
    /// Messages larger than this go to review unparsed.
    pub max_message_bytes: usize,
    /// Most `review.case_opened` notices the review queue keeps; beyond it the oldest are
    /// dropped (every case is in the database).
    pub review_queue_max_length: u32,
}

impl AmqpSettings {
    /// Every broker address to try: `url`, then each of `failover_urls`.
    pub fn addresses(&self) -> Vec<SecretUrl> {
        let others = self
            .failover_urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(SecretUrl::new);
        std::iter::once(self.url.clone()).chain(others).collect()
    }
}

/// The configuration keys of [`StageConsumers`], in the order of [`StageName::ALL`].
const CONSUMER_KEYS: [&str; 6] = [
    "amqp.consumers.verify",
    "amqp.consumers.prepare",
    "amqp.consumers.documents",
    "amqp.consumers.handover",
    "amqp.consumers.confirm",
    "amqp.consumers.revenue",
];

/// How many workers consume each stage's queue in one process.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConsumers {
    /// Workers of the verify stage.
    pub verify: usize,
    /// Workers of the prepare stage.
    pub prepare: usize,
    /// Workers of the documents stage.
    pub documents: usize,
    /// Workers of the handover stage.
    pub handover: usize,
    /// Workers of the confirm stage.
    pub confirm: usize,
    /// Workers of the revenue stage, which receives three events per order.
    pub revenue: usize,
}

impl StageConsumers {
    /// The number of workers for `stage`.
    pub fn of(&self, stage: StageName) -> usize {
        match stage {
            StageName::Verify => self.verify,
            StageName::Prepare => self.prepare,
            StageName::Documents => self.documents,
            StageName::Handover => self.handover,
            StageName::Confirm => self.confirm,
            StageName::Revenue => self.revenue,
        }
    }
}

/// Retry settings for transient failures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts before a message goes to review.
    pub max_attempts: u32,
    /// Attempts at an event that came before what it needs (a payment before its order) before
    /// it goes to review; more than `max_attempts`, since the wait is expected.
    pub too_early_max_attempts: u32,
    /// Delay before the second attempt, in milliseconds.
    pub base_delay_ms: u64,
    /// The longest delay, in milliseconds.
    pub max_delay_ms: u64,
}

impl RetrySettings {
    /// The delay after failed attempt `attempt` (from 1): doubling from the base, capped, plus
    /// up to 25% jitter so that messages failing together do not come back together.
    pub fn delay_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let doubled = self
            .base_delay_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(30));
        let capped = doubled.min(self.max_delay_ms);
        capped + (capped as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as u64
    }
}

/// Database settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The database's URL; its password is redacted when printed.
    pub url: SecretUrl,
    /// Connections in the pool of one process.
    pub max_connections: u32,
}

/// Outbox relay settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Milliseconds between passes.
    pub interval_ms: u64,
    /// Milliseconds an unsent row waits before the relay takes it over.
    pub grace_ms: u64,
    /// Most rows published in one pass.
    pub batch_size: i64,
}

/// Timer scheduler settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Milliseconds between looks for due timers.
    pub interval_ms: u64,
}

/// Business settings the stages apply.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSettings {
    /// Delivery terms for orders that name none.
    pub default_delivery_terms: String,
    /// Seconds the customer has to answer after handover before the order is deemed accepted.
    pub acceptance_window_secs: u64,
    /// Who sells, printed at the top of every document.
    #[serde(default)]
    pub seller: SellerSettings,
}

/// The seller's identity for documents. All empty means documents carry no seller block (an
/// invoice then lacks what the law asks of it; `run` warns).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SellerSettings {
    /// The seller's legal name.
    #[serde(default)]
    pub name: String,
    /// The seller's postal address, on one line.
    #[serde(default)]
    pub address: String,
    /// The VAT (or other tax) registration number; empty if not registered.
    #[serde(default)]
    pub tax_number: String,
    /// The company registration number; empty if none.
    #[serde(default)]
    pub company_number: String,
}

impl SellerSettings {
    /// The seller as documents print it, or `None` if not configured.
    pub fn seller(&self) -> Option<Seller> {
        let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Some(Seller {
            name: optional(&self.name)?,
            address: self.address.trim().to_owned(),
            tax_number: optional(&self.tax_number),
            company_number: optional(&self.company_number),
        })
    }

    fn is_empty(&self) -> bool {
        [
            &self.name,
            &self.address,
            &self.tax_number,
            &self.company_number,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }
}

/// Review desk settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSettings {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// People who may work the review queue.
    pub people: Vec<PersonSettings>,
}

/// A person who may work the review queue.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonSettings {
    /// Their name, recorded with every action they take.
    pub name: String,
    /// Their roles, such as `supervisor` or `finance`.
    pub roles: Vec<String>,
    /// SHA-256 of their bearer token, lower-case hex.
    pub token_sha256: String,
}

impl fmt::Debug for PersonSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonSettings")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// A tracing filter directive.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
}

/// Trace export settings (`[telemetry]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// The OTLP/HTTP collector's base URL, such as `http://127.0.0.1:4318`; traces go to
    /// `<endpoint>/v1/traces`. Empty: no traces are exported.
    pub otlp_endpoint: String,
    /// How spans are encoded.
    pub otlp_protocol: OtlpProtocol,
    /// The `service.name` spans carry.
    pub service_name: String,
}

/// The OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf, the OTLP default.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// JSON.
    #[serde(rename = "http/json")]
    HttpJson,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A URL that may carry a password. `Debug` and `Display` show it with the password replaced.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, password included. Use only to connect.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "<unparseable url>".into(),
        }
    }

    fn scheme(&self) -> Option<String> {
        url::Url::parse(&self.0).ok().map(|u| u.scheme().to_owned())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Settings {
    /// Loads settings from the defaults, the environment's file and `FULFILMENT__` variables.
    pub fn load() -> Result<Self, SettingsError> {
        // Set but empty (`FULFILMENT_ENV= cmd`) means no environment file, as unset does.
        let env_name = std::env::var("FULFILMENT_ENV")
            .ok()
            .filter(|name| !name.is_empty());
        let dir = std::env::var("FULFILMENT_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        Self::load_from(env_name.as_deref(), PathBuf::from(dir), EnvVars::Process)
    }

    /// Loads settings from the defaults, then `<dir>/<env_name>.toml` when `env_name` is given,
    /// then `FULFILMENT__` variables from `vars`.
    pub fn load_from(
        env_name: Option<&str>,
        dir: PathBuf,
        vars: EnvVars,
    ) -> Result<Self, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(name) = env_name {
            let path = dir.join(format!("{name}.toml"));
            builder = builder.add_source(File::from(path).required(true));
        }
        let environment = Environment::with_prefix("FULFILMENT")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        builder = builder.add_source(match vars {
            EnvVars::Process => environment,
            EnvVars::Given(map) => environment.source(Some(map)),
        });
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values whose type alone does not make them acceptable.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, expected| Err(SettingsError::Invalid { key, expected });
        if !matches!(self.amqp.url.scheme().as_deref(), Some("amqp" | "amqps")) {
            return invalid("amqp.url", "an amqp:// or amqps:// URL");
        }
        let failover = self.amqp.addresses().into_iter().skip(1);
        if failover
            .into_iter()
            .any(|u| !matches!(u.scheme().as_deref(), Some("amqp" | "amqps")))
        {
            return invalid(
                "amqp.failover_urls",
                "comma-separated amqp:// or amqps:// URLs (or nothing)",
            );
        }
        if !is_valid_namespace(&self.amqp.namespace) {
            return invalid(
                "amqp.namespace",
                "1 to 64 characters of a-z, A-Z, 0-9, '_' or '-'",
            );
        }
        if !(1..=64).contains(&self.amqp.partitions) {
            return invalid("amqp.partitions", "a number of partitions from 1 to 64");
        }
        if self.amqp.prefetch == 0 {
            return invalid("amqp.prefetch", "a number from 1 to 65535");
        }
        if self.amqp.batch_size == 0 {
            return invalid("amqp.batch_size", "a number of deliveries, at least 1");
        }
        if self.amqp.review_queue_max_length == 0 {
            return invalid(
                "amqp.review_queue_max_length",
                "a number of messages, at least 1",
            );
        }
        if self.retry.max_attempts == 0 {
            return invalid("retry.max_attempts", "a number of attempts, at least 1");
        }
        if self.retry.too_early_max_attempts == 0 {
            return invalid(
                "retry.too_early_max_attempts",
                "a number of attempts, at least 1",
            );
        }
        for (stage, key) in StageName::ALL.into_iter().zip(CONSUMER_KEYS) {
            if self.amqp.consumers.of(stage) == 0 {
                return invalid(key, "a number of consumers, at least 1");
            }
        }
        if !matches!(
            self.database.url.scheme().as_deref(),
            Some("postgres" | "postgresql")
        ) {
            return invalid("database.url", "a postgres:// URL");
        }
        if self.database.max_connections < 2 {
            return invalid("database.max_connections", "a number of at least 2");
        }
        if self.relay.interval_ms == 0 {
            return invalid("relay.interval_ms", "a number of milliseconds above 0");
        }
        if self.relay.batch_size < 1 {
            return invalid("relay.batch_size", "a number of at least 1");
        }
        if self.scheduler.interval_ms == 0 {
            return invalid("scheduler.interval_ms", "a number of milliseconds above 0");
        }
        if self.stages.default_delivery_terms.trim().is_empty() {
            return invalid("stages.default_delivery_terms", "a delivery terms code");
        }
        if self.stages.acceptance_window_secs == 0 {
            return invalid(
                "stages.acceptance_window_secs",
                "a number of seconds above 0",
            );
        }
        let seller = &self.stages.seller;
        if !seller.is_empty() && seller.name.trim().is_empty() {
            return invalid("stages.seller.name", "the seller's legal name");
        }
        if !seller.is_empty() && seller.address.trim().is_empty() {
            return invalid("stages.seller.address", "the seller's postal address");
        }
        let endpoint = self.telemetry.otlp_endpoint.trim();
        if !endpoint.is_empty() && url::Url::parse(endpoint).map_or(true, |u| u.scheme() != "http")
        {
            return invalid(
                "telemetry.otlp_endpoint",
                "empty, or a collector's http:// URL such as http://127.0.0.1:4318",
            );
        }
        if self.telemetry.service_name.trim().is_empty() {
            return invalid(
                "telemetry.service_name",
                "a service name such as fulfilment",
            );
        }
        if self.review.listen.parse::<std::net::SocketAddr>().is_err() {
            return invalid("review.listen", "an address such as 127.0.0.1:8080");
        }
        let hex64 = |t: &str| t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit());
        if self.review.people.iter().any(|p| !hex64(&p.token_sha256)) {
            return invalid(
                "review.people.token_sha256",
                "64 hex digits (fulfilment hash-token TOKEN prints them)",
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.filter).is_err() {
            return invalid("log.filter", "a tracing filter directive such as \"info\"");
        }
        Ok(())
    }
}

fn is_valid_namespace(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 64
        && ns
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings::load_from(None, PathBuf::from("config"), no_vars()).unwrap()
    }

    fn no_vars() -> EnvVars {
        EnvVars::Given(HashMap::new())
    }

    #[test]
    fn defaults_load_and_validate() {
        let s = defaults();
        assert_eq!(s.amqp.namespace, "fulfilment");
        assert_eq!(s.log.format, LogFormat::Text);
    }

    #[test]
    fn passwords_are_never_printed() {
        let url = SecretUrl::new("postgres://app:s3cret@db:5432/fulfilment");
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        assert!(url.redacted().contains("app:***@db"));
        let mut s = defaults();
        s.amqp.url = SecretUrl::new("amqp://user:hunter2@mq/%2f");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_seller_needs_a_name_and_an_address_or_nothing_at_all() {
        let mut s = defaults();
        assert_eq!(s.stages.seller.seller(), None);
        s.stages.seller.tax_number = "GB123456789".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("stages.seller.name"), "{err}");
        s.stages.seller.name = "Northern Kitchenware Ltd".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("stages.seller.address"), "{err}");
        s.stages.seller.address = " 1 Market Street, Leeds ".into();
        s.validate().unwrap();
        let seller = s.stages.seller.seller().unwrap();
        assert_eq!(seller.address, "1 Market Street, Leeds");
        assert_eq!(seller.tax_number.as_deref(), Some("GB123456789"));
        assert_eq!(seller.company_number, None);
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        let mut s = defaults();
        s.amqp.namespace = "has space".into();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("amqp.namespace"), "{err}");

        let dir = std::env::temp_dir().join(format!("fulfilment-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.toml"), "[amqp]\nprefetch = \"lots\"\n").unwrap();
        let err = Settings::load_from(Some("bad"), dir.clone(), no_vars())
            .unwrap_err()
            .to_string();
        assert!(err.contains("amqp.prefetch"), "{err}");

        let vars = HashMap::from([("FULFILMENT__RELAY__INTERVAL_MS".into(), "soon".into())]);
        let err = Settings::load_from(None, dir, EnvVars::Given(vars))
            .unwrap_err()
            .to_string();
        assert!(err.contains("relay.interval_ms"), "{err}");
    }

    #[test]
    fn failover_urls_follow_the_main_url_and_must_be_amqp() {
        let mut s = defaults();
        assert_eq!(s.amqp.addresses().len(), 1);
        s.amqp.failover_urls = " amqp://a:5673/%2f ,amqp://b:5674/%2f,".into();
        let addresses: Vec<String> = s
            .amqp
            .addresses()
            .iter()
            .map(|u| u.expose().to_owned())
            .collect();
        assert_eq!(
            addresses,
            [
                s.amqp.url.expose(),
                "amqp://a:5673/%2f",
                "amqp://b:5674/%2f"
            ]
        );
        s.amqp.failover_urls = "amqp://a:5673/%2f,http://b".into();
        let error = s.validate().unwrap_err().to_string();
        assert!(error.contains("amqp.failover_urls"), "{error}");
    }

    #[test]
    fn retry_delays_double_up_to_the_cap_with_bounded_jitter() {
        let retry = defaults().retry;
        assert_eq!(retry.delay_ms(1, 0.0), 500);
        assert_eq!(retry.delay_ms(2, 0.0), 1000);
        assert_eq!(retry.delay_ms(3, 0.0), 2000);
        assert_eq!(retry.delay_ms(20, 0.0), 30_000);
        assert_eq!(retry.delay_ms(1, 1.0), 625);
    }

    #[test]
    fn environment_variables_override_files() {
        let vars = HashMap::from([
            ("FULFILMENT__AMQP__PREFETCH".into(), "7".into()),
            ("FULFILMENT__AMQP__NAMESPACE".into(), "shop-eu".into()),
            (
                "FULFILMENT__STAGES__SELLER__NAME".into(),
                "Shop EU BV".into(),
            ),
            (
                "FULFILMENT__STAGES__SELLER__ADDRESS".into(),
                "Damrak 1, Amsterdam".into(),
            ),
        ]);
        let s = Settings::load_from(None, PathBuf::from("config"), EnvVars::Given(vars)).unwrap();
        assert_eq!(s.amqp.prefetch, 7);
        assert_eq!(s.amqp.namespace, "shop-eu");
        assert_eq!(s.stages.seller.seller().unwrap().name, "Shop EU BV");
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let vars = HashMap::from([("FULFILMENT__AMQP__PREFETHC".into(), "7".into())]);
        let err = Settings::load_from(None, PathBuf::from("config"), EnvVars::Given(vars))
            .unwrap_err()
            .to_string();
        assert!(err.contains("prefethc"), "{err}");
    }
}

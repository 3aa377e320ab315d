//! Server settings (SPEC §7): `hookflow.yaml`, then `HOOKFLOW_<NAME>`
//! environment variables, then command-line flags, each overriding the one
//! before.
//!
//! Each setting is named once, in the [`settings!`] table below, with its
//! type and default. Every layer is read as text per setting (YAML scalars
//! of any type too) and parsed once into the setting's type through
//! [`SettingValue`]; an unknown key in the file is an error at its
//! `file:line:column`, with a "did you mean".

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

/// How a setting's text becomes its value.
pub trait SettingValue: Sized {
    fn parse(text: &str) -> Result<Self, String>;
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr; )*) => {
        /// Everything `serve` (and the commands that read the store) needs.
        #[derive(Debug, Clone)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $( $name: $default, )* }
            }
        }

        /// Every setting's name as written in hookflow.yaml (and, upper-cased
        /// after `HOOKFLOW_`, in the environment).
        pub const NAMES: &[&str] = &[ $( stringify!($name), )* ];

        /// Every setting with its doc comment and default value, in table
        /// order: docs/REFERENCE.md is generated from it (`crate::reference`).
        pub fn documented() -> Vec<(&'static str, &'static str, Box<dyn std::any::Any>)> {
            let defaults = Settings::default();
            vec![ $( (
                stringify!($name),
                concat!($($doc, "\n"),*),
                Box::new(defaults.$name) as Box<dyn std::any::Any>,
            ), )* ]
        }

        impl Settings {
            /// Parses `text` into the setting called `name`.
            fn set(&mut self, name: &str, text: &str) -> Result<(), String> {
                match name {
                    $( stringify!($name) => self.$name = <$ty as SettingValue>::parse(text)?, )*
                    _ => return Err(format!("unknown setting `{name}`")),
                }
                Ok(())
            }
        }
    };
}

settings! {
    /// Where webhooks are received.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    /// The rules directory.
    rules: PathBuf = PathBuf::from("rules");
    /// The run log: `sqlite://path` or `postgres://…`.
    database: DatabaseUrl = DatabaseUrl::Sqlite {
        path: PathBuf::from("hookflow.db"),
        url: "sqlite://hookflow.db".to_string(),
    };
    /// Runs executed at once; 0 makes the node receive only.
    workers: usize = 16;
    /// Serve the sources' paths on `listen`; `false` makes a worker-only
    /// node (only /healthz, /readyz, /metrics, /api and /ui are served).
    receive: bool = true;
    /// Largest accepted body, unless a source says otherwise.
    max_body: ByteSize = ByteSize(1024 * 1024);
    /// How long a resend is recognised.
    dedupe_window: Duration = Duration::from_secs(7 * 24 * 3600);
    /// How long deliveries and runs are kept (0: for ever).
    retention: Duration = Duration::from_secs(30 * 24 * 3600);
    /// How long requests and steps in flight may finish on shutdown.
    shutdown_grace: Duration = Duration::from_secs(30);
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<IpNet> = Vec::new();
    /// Required as a bearer token for `/api`, `/ui` and `/metrics` when
    /// set; then they are served on `listen` too (SPEC §8).
    admin_token: Option<Secret> = None;
    /// A file holding the admin token (wins over `admin_token`).
    admin_token_file: Option<PathBuf> = None;
    /// The admin surface's own listener (`off`: none). Loopback only
    /// unless an `admin_token` is set.
    admin_listen: Option<SocketAddr> = Some(SocketAddr::from(([127, 0, 0, 1], 9090)));
    /// The URL senders and operators use to reach this server, when it is
    /// not a loopback name (its host is accepted on the admin listener).
    public_url: Option<PublicUrl> = None;
    /// Serve HTTPS on `listen`: `{ cert: PATH, key: PATH }` (PEM).
    tls: Option<TlsFiles> = None;
    /// `text` or `json` log lines.
    log_format: LogFormat = LogFormat::Text;
    /// Watch the rules by polling (NFS, some container mounts).
    poll: bool = false;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the run log lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `sqlite://path[?synchronous=…]`: the file, and the URL as given.
    Sqlite { path: PathBuf, url: String },
    /// `postgres://…` as given (it may hold a password: see `Display`).
    Postgres(String),
}

/// A byte count written as `1048576`, `512KiB` or `1MiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// The admin token: never printed (`Debug` and `Display` show `***`).
pub use crate::verify::Secret;

/// An absolute `http(s)://` URL; `host` is its host, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub url: String,
    pub host: String,
}

/// A certificate chain and its private key, PEM files re-read on change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A setting that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// (The cause is not a `source`: the message already says it once.)
    #[error("cannot read {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    /// Every problem of the settings file, one `file:line:column: …` each.
    #[error("{}", .0.join("\n"))]
    File(Vec<String>),
    #[error("{origin}: invalid {name} {value:?}: {reason}")]
    Invalid {
        origin: String,
        name: String,
        value: String,
        reason: String,
    },
}

/// Where a setting's text came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    File(crate::rules::node::Loc),
    Env(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(loc) => write!(f, "{loc}"),
            Origin::Env(var) => write!(f, "the environment ({var})"),
            Origin::Flag(flag) => write!(f, "the command line (--{flag})"),
        }
    }
}

/// The settings one source gives, as text, in order.
#[derive(Debug, Clone, Default)]
pub struct Layer {
    entries: Vec<(String, String, Origin)>,
}

impl Layer {
    /// A flag's value (`name` as in hookflow.yaml; `--name-with-dashes`).
    pub fn flag(&mut self, name: &str, value: Option<impl Into<String>>) -> &mut Self {
        debug_assert!(NAMES.contains(&name), "{name} is not a setting");
        if let Some(value) = value {
            let origin = Origin::Flag(name.replace('_', "-"));
            self.entries.push((name.to_string(), value.into(), origin));
        }
        self
    }

    /// `HOOKFLOW_<NAME>` variables.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Layer {
        let mut layer = Layer::default();
        for name in NAMES {
            let var = format!("HOOKFLOW_{}", name.to_ascii_uppercase());
            if let Some(value) = env(&var) {
                layer
                    .entries
                    .push((name.to_string(), value, Origin::Env(var)));
            }
        }
        layer
    }

    /// A `hookflow.yaml` file: a mapping of setting names to scalars (a
    /// list for `trusted_proxies`). Every problem is reported at once.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        use crate::rules::node::{Kind, Loc, key_text};
        let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
            path: path.to_path_buf(),
            reason,
        })?;
        let file: std::sync::Arc<str> = path.display().to_string().into();
        let root = crate::rules::node::parse(&text)
            .map_err(|e| ConfigError::File(vec![format!("{file}: {}", e.without_snippet())]))?;
        let entries = match root.kind {
            Kind::Null => Vec::new(),
            Kind::Map(entries) => entries,
            _ => {
                let at = Loc::new(file, root.line, root.column);
                return Err(ConfigError::File(vec![format!(
                    "{at}: expected a mapping of settings (listen: …, workers: …)"
                )]));
            }
        };
        let mut layer = Layer::default();
        let mut problems = Vec::new();
        for (key, value) in entries {
            let name = key_text(&key);
            let at = Loc::new(file.clone(), key.line, key.column);
            if !NAMES.contains(&name.as_str()) {
                let hint = strsim_closest(&name)
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                problems.push(format!("{at}: unknown setting `{name}`{hint}"));
                continue;
            }
            let scalar = |node: &crate::rules::node::Node| match &node.kind {
                Kind::String(s) => Some(s.clone()),
                Kind::Number(n) => Some(n.to_string()),
                Kind::Bool(b) => Some(b.to_string()),
                _ => None,
            };
            let text = match &value.kind {
                Kind::Seq(items) => items
                    .iter()
                    .map(scalar)
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.join(",")),
                // `tls: { cert: …, key: … }` → `cert=…,key=…`
                Kind::Map(pairs) => pairs
                    .iter()
                    .map(|(k, v)| scalar(v).map(|v| format!("{}={v}", key_text(k))))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.join(",")),
                Kind::Null => Some(String::new()),
                _ => scalar(&value),
            };
            match text {
                Some(text) => layer.entries.push((name, text, Origin::File(at))),
                None => problems.push(format!(
                    "{at}: `{name}` takes a value, not a nested structure"
                )),
            }
        }
        if problems.is_empty() {
            Ok(layer)
        } else {
            Err(ConfigError::File(problems))
        }
    }
}

/// The known setting closest to a misspelt one.
fn strsim_closest(name: &str) -> Option<&'static str> {
    NAMES
        .iter()
        .map(|n| (strsim::jaro_winkler(name, n), *n))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n)
}

impl Settings {
    /// Defaults, overridden by each layer in order (file, env, flags).
    pub fn resolve(layers: &[Layer]) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        for layer in layers {
            for (name, text, origin) in &layer.entries {
                s.set(name, text).map_err(|reason| ConfigError::Invalid {
                    origin: origin.to_string(),
                    name: name.clone(),
                    // Never echo a token back.
                    value: if name == "admin_token" {
                        "***".into()
                    } else {
                        text.clone()
                    },
                    reason,
                })?;
            }
        }
        if let Some(path) = &s.admin_token_file {
            let invalid = |reason: String| ConfigError::Invalid {
                origin: "admin_token_file".into(),
                name: "admin_token_file".into(),
                value: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read it: {e}")))?;
            let token = text.strip_suffix('\n').unwrap_or(&text);
            let token = token.strip_suffix('\r').unwrap_or(token);
            s.admin_token = Some(Secret::parse(token).map_err(invalid)?);
        }
        Ok(s)
    }

    /// The host of `public_url`, lower-cased, when one is set.
    pub fn public_host(&self) -> Option<&str> {
        self.public_url.as_ref().map(|u| u.host.as_str())
    }

    /// The SQLite file, when the database is SQLite.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.database {
            DatabaseUrl::Sqlite { path, .. } => Some(path),
            DatabaseUrl::Postgres(_) => None,
        }
    }
}

impl SettingValue for SocketAddr {
    /// `127.0.0.1:8080`, `[::1]:8080`, or `:8080` (every IPv4 interface).
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let full = match text.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => text.to_string(),
        };
        full.parse()
            .map_err(|e| format!("{e}; write e.g. 127.0.0.1:8080, [::1]:8080 or :8080"))
    }
}

impl SettingValue for PathBuf {
    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the path is empty".into());
        }
        Ok(PathBuf::from(text))
    }
}

impl SettingValue for usize {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "expected a whole number".to_string())
    }
}

impl SettingValue for bool {
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); anything else
    /// is an error, not a silent `false`.
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("use true or false".into()),
        }
    }
}

impl SettingValue for Duration {
    fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim()).map_err(|e| format!("{e}; write e.g. 30s, 5m, 7d"))
    }
}

impl SettingValue for ByteSize {
    fn parse(text: &str) -> Result<Self, String> {
        use crate::rules::decode::{MAX_BODY_CAP, parse_byte_size};
        let size = parse_byte_size(text.trim())
            .ok_or_else(|| "write e.g. 1048576, 512KiB or 1MiB".to_string())?;
        if size > MAX_BODY_CAP {
            return Err(format!(
                "above the cap of {MAX_BODY_CAP} bytes (64MiB): a body is held in memory whole while it is verified and stored"
            ));
        }
        Ok(ByteSize(size))
    }
}

impl SettingValue for Vec<IpNet> {
    /// A comma-separated list (a YAML list in the file).
    fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{p:?} is not an address or CIDR range"))
            })
            .collect()
    }
}

impl<T: SettingValue> SettingValue for Option<T> {
    /// `off` (or `none`) for no value.
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "off" | "none" => Ok(None),
            _ => T::parse(text).map(Some),
        }
    }
}

impl SettingValue for LogFormat {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("use text or json".into()),
        }
    }
}

impl SettingValue for DatabaseUrl {
    fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(text.to_string()));
        }
        if text.starts_with("sqlite:") {
            let (path, _) =
                crate::store::sqlite::SqliteOptions::from_url(text).map_err(|e| e.to_string())?;
            return Ok(DatabaseUrl::Sqlite {
                path,
                url: text.to_string(),
            });
        }
        Err("use sqlite://PATH or postgres://…".into())
    }
}

impl DatabaseUrl {
    /// The URL as given, for the store (may hold a password: never log it).
    pub fn as_str(&self) -> &str {
        match self {
            DatabaseUrl::Sqlite { url, .. } => url,
            DatabaseUrl::Postgres(url) => url,
        }
    }
}

/// The URL with any password replaced by `***`.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite { url, .. } => f.write_str(url),
            DatabaseUrl::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                match rest.split_once('@') {
                    Some((user_info, host)) => {
                        let user = user_info.split(':').next().unwrap_or("");
                        if user_info.contains(':') {
                            write!(f, "{scheme}://{user}:***@{host}")
                        } else {
                            write!(f, "{scheme}://{user}@{host}")
                        }
                    }
                    None => f.write_str(url),
                }
            }
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl SettingValue for TlsFiles {
    /// `cert=PATH,key=PATH` (a `{cert, key}` mapping in the file).
    fn parse(text: &str) -> Result<Self, String> {
        let (mut cert, mut key) = (None, None);
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cert", path)) if !path.is_empty() => cert = Some(PathBuf::from(path)),
                Some(("key", path)) if !path.is_empty() => key = Some(PathBuf::from(path)),
                _ => return Err(format!("{pair:?}: write {{ cert: PATH, key: PATH }}")),
            }
        }
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(TlsFiles { cert, key }),
            _ => Err("both cert and key are needed: { cert: PATH, key: PATH }".into()),
        }
    }
}

impl SettingValue for Secret {
    fn parse(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err(
                "the token is empty; set a long random value, or remove the setting".into(),
            );
        }
        Ok(Secret::new(text))
    }
}

impl SettingValue for PublicUrl {
    /// `https://Hooks.Example.com:8443/x` → host `hooks.example.com`.
    fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || "expected an absolute http(s) URL such as https://hooks.example.com".to_string();
        let url = text.trim();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit('@').next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        };
        if host.is_empty() {
            return Err(bad());
        }
        Ok(PublicUrl {
            url: url.trim_end_matches('/').to_string(),
            host: host.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&str, &str)]) -> Layer {
        let mut layer = Layer::default();
        for (name, value) in pairs {
            layer.flag(name, Some(*value));
        }
        layer
    }

    #[test]
    fn flags_beat_env_which_beats_the_file_which_beats_defaults() {
        let file = flags(&[
            ("listen", "0.0.0.0:9000"),
            ("workers", "4"),
            ("retention", "7d"),
        ]);
        let env = Layer::from_env(&|name| match name {
            "HOOKFLOW_WORKERS" => Some("8".into()),
            "HOOKFLOW_LISTEN" => Some("127.0.0.1:7000".into()),
            _ => None,
        });
        let s = Settings::resolve(&[file, env, flags(&[("listen", "127.0.0.1:6000")])]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:6000");
        assert_eq!(s.workers, 8);
        assert_eq!(s.retention, Duration::from_secs(7 * 86400));
        assert_eq!(s.max_body, ByteSize(1024 * 1024), "default kept");
    }

    #[test]
    fn zero_workers_is_a_receive_only_node() {
        let s = Settings::resolve(&[flags(&[("workers", "0")])]).unwrap();
        assert_eq!(s.workers, 0);
    }

    #[test]
    fn invalid_values_name_the_setting_and_where_it_came_from() {
        let env = Layer::from_env(&|name| (name == "HOOKFLOW_WORKERS").then(|| "zero".into()));
        let e = Settings::resolve(&[env]).unwrap_err().to_string();
        assert!(
            e.contains("workers") && e.contains("HOOKFLOW_WORKERS"),
            "{e}"
        );
        let e = Settings::resolve(&[flags(&[("max_body", "1GiB")])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--max-body") && e.contains("cap"), "{e}");
    }

    #[test]
    fn the_settings_file_reports_every_unknown_key_with_its_line_and_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookflow.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:1234\nworkres: 4\nretension: 2d\n").unwrap();
        let e = Layer::from_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("hookflow.yaml:2:1: unknown setting `workres` (did you mean `workers`?)"),
            "{e}"
        );
        assert!(
            e.contains(":3:1: unknown setting `retension` (did you mean `retention`?)"),
            "{e}"
        );
        std::fs::write(
            &path,
            "listen: 127.0.0.1:1234\nworkers: 4\nmax_body: 2MiB\npoll: true\ntrusted_proxies: [10.0.0.0/8, 127.0.0.1]\n",
        )
        .unwrap();
        let s = Settings::resolve(&[Layer::from_file(&path).unwrap()]).unwrap();
        assert_eq!(
            (s.workers, s.max_body, s.poll),
            (4, ByteSize(2 * 1024 * 1024), true)
        );
        assert_eq!(s.trusted_proxies.len(), 2);
        std::fs::write(&path, "workers: many\n").unwrap();
        let e = Settings::resolve(&[Layer::from_file(&path).unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hookflow.yaml:1:1") && e.contains("whole number"),
            "{e}"
        );
    }

    #[test]
    fn admin_settings_are_checked() {
        let one = |name: &str, value: &str| Settings::resolve(&[flags(&[(name, value)])]);
        assert!(
            one("admin_token", " ").is_err(),
            "an empty token is an error"
        );
        let e = one("admin_token", "").unwrap_err().to_string();
        assert!(e.contains("admin_token") && e.contains("***"), "{e}");
        assert_eq!(one("admin_listen", "off").unwrap().admin_listen, None);
        assert_eq!(
            one("listen", ":8181").unwrap().listen.to_string(),
            "0.0.0.0:8181"
        );
        let s = one("public_url", "https://Hooks.Example.com:8443/base/").unwrap();
        assert_eq!(s.public_host(), Some("hooks.example.com"));
        assert!(one("public_url", "hooks.example.com").is_err());
        assert!(one("poll", "ture").is_err(), "a typo is not false");
        let s = one("admin_token", "t0p-secret").unwrap();
        assert!(
            !format!("{s:?}").contains("t0p-secret"),
            "Debug never shows the token"
        );
    }

    #[test]
    fn the_admin_token_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let s = Settings::resolve(&[flags(&[("admin_token_file", &path.display().to_string())])])
            .unwrap();
        assert_eq!(
            s.admin_token.as_ref().map(Secret::expose),
            Some("s3cret-token")
        );
    }

    #[test]
    fn tls_takes_a_cert_and_a_key_from_the_file_or_a_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookflow.yaml");
        std::fs::write(
            &path,
            "tls: { cert: /etc/hf/cert.pem, key: /etc/hf/key.pem }\n",
        )
        .unwrap();
        let s = Settings::resolve(&[Layer::from_file(&path).unwrap()]).unwrap();
        let tls = s.tls.expect("tls");
        assert_eq!(tls.cert, Path::new("/etc/hf/cert.pem"));
        assert_eq!(tls.key, Path::new("/etc/hf/key.pem"));
        let e = Settings::resolve(&[flags(&[("tls", "cert=/a.pem")])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("both cert and key"), "{e}");
    }

    #[test]
    fn database_urls_are_typed_and_never_print_a_password() {
        let s = Settings::resolve(&[flags(&[(
            "database",
            "sqlite://data/run.db?synchronous=full",
        )])])
        .unwrap();
        assert_eq!(s.sqlite_path(), Some(Path::new("data/run.db")));
        let s = Settings::resolve(&[flags(&[("database", "postgres://hook:pa55@db:5432/hooks")])])
            .unwrap();
        assert_eq!(s.sqlite_path(), None);
        assert_eq!(s.database.to_string(), "postgres://hook:***@db:5432/hooks");
        assert!(!format!("{s:?}").contains("pa55"));
        assert!(Settings::resolve(&[flags(&[("database", "mysql://x")])]).is_err());
    }
}

//! How libgit2 reaches remotes: credentials read from files (an ssh key, an https token), ssh host keys checked against a known hosts file, an extra CA bundle, connect and silence timeouts on every network operation, and retries with backoff for transient failures.
//!
//! The settings are process-wide, as libgit2's own timeouts and CA locations are: each service sets them once at
//! start-up ([`configure`]) from `[git]`, before any remote is reached. Secrets are read from their files when a
//! remote asks for them, never kept in a `Debug`-printable value or put in an error message.

use git2::{CertificateCheckStatus, Cred, CredentialType, ErrorClass, ErrorCode, RemoteCallbacks};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// Where the credentials are and how long a network operation may wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transport {
    pub ssh_key_file: Option<PathBuf>,
    pub ssh_known_hosts_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub https_token_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub low_speed_timeout: Duration,
}

static SETTINGS: RwLock<Option<Transport>> = RwLock::new(None);
static RETRIES: AtomicU64 = AtomicU64::new(0);

/// How many network git operations failed transiently and were tried again, since the process started.
pub fn retries() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

/// Attempts of one network operation: the first and two more after a transient failure.
const ATTEMPTS: u32 = 3;

impl Transport {
    /// The transport `[git]` describes (its files were checked when the configuration was loaded).
    pub fn new(
        ssh_key_file: Option<PathBuf>,
        ssh_known_hosts_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
        https_token_file: Option<PathBuf>,
        connect_timeout_secs: u64,
        low_speed_timeout_secs: u64,
    ) -> Transport {
        Transport {
            ssh_key_file,
            ssh_known_hosts_file,
            ca_file,
            https_token_file,
            connect_timeout: Duration::from_secs(connect_timeout_secs),
            low_speed_timeout: Duration::from_secs(low_speed_timeout_secs),
        }
    }
}

/// Set the transport every later fetch, push and listing of this process uses. Called at start-up (again with the
/// same settings by each stage of a single process; tests may change it). libgit2 refusing an option is logged: the
/// configuration's own checks (`Settings::validate`) have already named any key that cannot work.
pub fn configure(t: &Transport) {
    let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
    // SAFETY: libgit2's global options, each set under libgit2's own lock; the values are plain integers and a path.
    #[allow(unsafe_code)]
    let set = unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(millis(t.connect_timeout))
            .and_then(|()| git2::opts::set_server_timeout_in_milliseconds(millis(t.low_speed_timeout)))
            .and_then(|()| match &t.ca_file {
                // Added to the system's trust store (OpenSSL's load_verify_locations), not instead of it.
                Some(ca) => git2::opts::set_ssl_cert_file(ca),
                None => Ok(()),
            })
    };
    if let Err(e) = set {
        tracing::error!(error = %e.message(), "libgit2 refused the [git] transport settings");
    }
    *SETTINGS.write().unwrap_or_else(|p| p.into_inner()) = Some(t.clone());
}

fn settings() -> Transport {
    SETTINGS.read().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default()
}

/// Whether a failure may pass on another attempt: the network, not the remote's answer or our credentials.
pub fn is_transient(e: &git2::Error) -> bool {
    if matches!(e.code(), ErrorCode::Auth | ErrorCode::Certificate | ErrorCode::NotFound | ErrorCode::User) {
        return false;
    }
    // A certificate OpenSSL refused comes back as a generic TLS error.
    if e.class() == ErrorClass::Ssl && e.message().contains("certificate") {
        return false;
    }
    // An HTTP status (404, 403, ...) is the remote's answer, not the network's failure.
    matches!(e.class(), ErrorClass::Net | ErrorClass::Os | ErrorClass::Ssl | ErrorClass::Ssh) || e.code() == ErrorCode::Timeout
}

/// Run one network operation against `url`, with this process's callbacks, again after a transient failure
/// (1 s, then 4 s later). Local paths are tried once.
pub fn with_remote<T>(url: &str, mut op: impl FnMut(RemoteCallbacks<'static>) -> Result<T, git2::Error>) -> Result<T, git2::Error> {
    let mut attempt = 1;
    loop {
        match op(callbacks(url)) {
            Err(e) if attempt < ATTEMPTS && is_network(url) && is_transient(&e) => {
                RETRIES.fetch_add(1, Ordering::Relaxed);
                let wait = Duration::from_secs(4u64.pow(attempt - 1));
                tracing::warn!(remote = %redacted(url), error = %e.message(), attempt, "git network operation failed; trying again in {wait:?}");
                std::thread::sleep(wait);
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn is_network(url: &str) -> bool {
    (url.contains("://") && !url.starts_with("file://"))
        || (!url.contains("://") && url.split_once(':').is_some_and(|(h, _)| !h.contains('/')))
}

/// `url` without any user information (a password or token someone put there).
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p)) {
            (authority, path) if authority.contains('@') => {
                let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
                format!("{scheme}://{host}/{path}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The callbacks of one operation on `url`: credentials once per kind (a refused key or token fails instead of
/// looping), and ssh host keys checked against the known hosts file.
fn callbacks(url: &str) -> RemoteCallbacks<'static> {
    let t = settings();
    let port = port_of(url);
    let mut cb = RemoteCallbacks::new();
    let mut tried = CredentialType::empty();
    let creds = t.clone();
    cb.credentials(move |_url, user, allowed| {
        if allowed.contains(CredentialType::SSH_KEY) && !tried.contains(CredentialType::SSH_KEY) {
            tried |= CredentialType::SSH_KEY;
            let key = creds.ssh_key_file.as_deref().ok_or_else(|| git2::Error::from_str("an ssh remote needs git.ssh_key_file"))?;
            return Cred::ssh_key(user.unwrap_or("git"), None, key, None);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) && !tried.contains(CredentialType::USER_PASS_PLAINTEXT) {
            tried |= CredentialType::USER_PASS_PLAINTEXT;
            if let Some(file) = &creds.https_token_file {
                let token = std::fs::read_to_string(file).map_err(|e| git2::Error::from_str(&format!("git.https_token_file: {e}")))?;
                return Cred::userpass_plaintext("x-access-token", token.trim());
            }
        }
        if allowed.contains(CredentialType::USERNAME) && !tried.contains(CredentialType::USERNAME) {
            tried |= CredentialType::USERNAME;
            return Cred::username(user.unwrap_or("git"));
        }
        Err(git2::Error::new(ErrorCode::Auth, ErrorClass::Net, "the remote refused the configured credentials (or none are configured)"))
    });
    let hosts = t.ssh_known_hosts_file.clone();
    cb.certificate_check(move |cert, host| {
        let Some(key) = cert.as_hostkey() else {
            return Ok(CertificateCheckStatus::CertificatePassthrough); // TLS: OpenSSL's verdict
        };
        let Some(blob) = key.hostkey() else {
            return Err(git2::Error::from_str("the ssh server sent no host key"));
        };
        let file = hosts.as_deref().ok_or_else(|| git2::Error::from_str("an ssh remote needs git.ssh_known_hosts_file"))?;
        let text = std::fs::read_to_string(file).map_err(|e| git2::Error::from_str(&format!("git.ssh_known_hosts_file: {e}")))?;
        let entries = known_hosts(&text);
        let revoked = entries.iter().any(|entry| entry.revoked && entry.key == blob);
        if !revoked && entries.iter().any(|entry| !entry.revoked && entry.matches(host, port) && entry.key == blob) {
            Ok(CertificateCheckStatus::CertificateOk)
        } else {
            // libgit2 answers with its own words ("invalid or unknown remote ssh hostkey"): say which file.
            let why = format!("the host key of {host} (port {port}) is not in git.ssh_known_hosts_file ({})", file.display());
            tracing::error!("{why}");
            Err(git2::Error::new(ErrorCode::Certificate, ErrorClass::Ssh, why))
        }
    });
    cb
}

/// The port of an `ssh://` URL (22 otherwise).
fn port_of(url: &str) -> u16 {
    let authority = url.split_once("://").map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(22)
}

/// One line of a known hosts file: who it names and the key (the wire-format blob).
#[derive(Debug)]
struct KnownHost {
    patterns: Vec<HostPattern>,
    key: Vec<u8>,
    /// `@revoked`: this key is refused for every host.
    revoked: bool,
}

#[derive(Debug)]
enum HostPattern {
    /// `host` (port 22) or `[host]:port`.
    Plain(String),
    /// `|1|salt|hash`: HMAC-SHA1 of the name (as written in a plain entry) keyed with the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

impl KnownHost {
    fn matches(&self, host: &str, port: u16) -> bool {
        let name = if port == 22 { host.to_owned() } else { format!("[{host}]:{port}") };
        self.patterns.iter().any(|p| match p {
            HostPattern::Plain(p) => *p == name,
            HostPattern::Hashed { salt, hash } => {
                use hmac::Mac;
                let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt) else { return false };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        })
    }
}

/// The entries of a known hosts file (comments, unreadable lines and markers other than `@revoked`, such as
/// `@cert-authority`, left out).
fn known_hosts(text: &str) -> Vec<KnownHost> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    text.lines()
        .filter_map(|line| {
            let mut line = line.trim();
            let revoked = line.starts_with("@revoked");
            if revoked {
                line = line["@revoked".len()..].trim_start();
            }
            if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
                return None;
            }
            let mut fields = line.split_whitespace();
            let (hosts, _kind, key) = (fields.next()?, fields.next()?, fields.next()?);
            let patterns = hosts
                .split(',')
                .filter_map(|h| match h.strip_prefix("|1|").and_then(|r| r.split_once('|')) {
                    Some((salt, hash)) => Some(HostPattern::Hashed { salt: b64.decode(salt).ok()?, hash: b64.decode(hash).ok()? }),
                    None => Some(HostPattern::Plain(h.to_owned())),
                })
                .collect();
            Some(KnownHost { patterns, key: b64.decode(key).ok()?, revoked })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_match_plain_bracketed_and_hashed_names() {
        // `|1|salt|hash` for "[127.0.0.1]:2222" with salt "0123456789abcdefghij" (HMAC-SHA1, as ssh-keygen -H writes).
        use base64::Engine as _;
        use hmac::Mac;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b"0123456789abcdefghij";
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hashed = format!("|1|{}|{}", b64.encode(salt), b64.encode(mac.finalize().into_bytes()));
        let key = b64.encode(b"blob");
        let text = format!(
            "# comment\nexample.org ssh-ed25519 {key}\n[10.0.0.1]:2200 ssh-rsa {key}\n{hashed} ssh-ed25519 {key}\n@revoked * ssh-rsa {key}\n@cert-authority * x {key}\n"
        );
        let entries = known_hosts(&text);
        assert_eq!(entries.len(), 4);
        assert!(entries[3].revoked && !entries[0].revoked);
        assert!(entries[0].matches("example.org", 22) && !entries[0].matches("example.org", 2222));
        assert!(entries[1].matches("10.0.0.1", 2200) && !entries[1].matches("10.0.0.1", 22));
        assert!(entries[2].matches("127.0.0.1", 2222) && !entries[2].matches("127.0.0.2", 2222));
        assert_eq!(entries[0].key, b"blob");
    }

    #[test]
    fn ports_and_redaction() {
        assert_eq!(port_of("ssh://git@127.0.0.1:2222/srv/r.git"), 2222);
        assert_eq!(port_of("ssh://git@example.org/srv/r.git"), 22);
        assert_eq!(port_of("git@example.org:gentoo/gentoo.git"), 22);
        assert_eq!(redacted("https://x-access-token:s3cret@example.org/g.git"), "https://example.org/g.git");
        assert_eq!(redacted("https://example.org/g.git"), "https://example.org/g.git");
        assert!(is_network("git@example.org:g.git") && is_network("https://e.org/g") && !is_network("/srv/g.git"));
    }
}

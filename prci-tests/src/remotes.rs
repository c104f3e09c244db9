//! Real network remotes on loopback for end-to-end tests of git2's transports: a throwaway certificate
//! authority ([`Ca`]), bare repositories served over HTTPS by `git http-backend` behind
//! `fixtures/git_https.py` ([`HttpsRemote`]), over SSH by the system's `sshd` ([`SshRemote`]), and a remote
//! that accepts TCP connections and never says a word ([`SilentRemote`]), for proving client timeouts.
//!
//! Needs `python3`, `git`, `openssl`, `ssh-keygen` and `/usr/sbin/sshd` (package `openssh-server`; another
//! binary through `$PRCI_TEST_SSHD`). The SSH remote runs sshd as the current user, so in CI that is root.

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two looks at a starting server.
const POLL: Duration = Duration::from_millis(50);
/// Environment variable overriding the sshd binary (it must be an absolute path: sshd re-executes itself).
pub const SSHD_ENV: &str = "PRCI_TEST_SSHD";
/// sshd binary when `$PRCI_TEST_SSHD` is not set.
const DEFAULT_SSHD: &str = "/usr/sbin/sshd";
/// Privilege separation directory sshd refuses to start without.
const PRIVSEP_DIR: &str = "/run/sshd";
/// Ports tried before [`SshRemote::start`] gives up (another process may grab a free port before sshd binds it).
const SSHD_ATTEMPTS: usize = 5;

/// Runs `command` to completion; its stdout, or a panic with its stderr.
fn run(command: &mut Command) -> String {
    let output = command.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `dir` created and made absolute (servers get absolute paths in their configuration).
fn absolute_dir(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    fs::canonicalize(dir).unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()))
}

fn write(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// What a server wrote to its log file, for a panic message.
fn log_of(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("(no log at {}: {e})", path.display()))
}

fn log_file(path: &Path) -> fs::File {
    fs::File::create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
}

/// Kills `child` and reaps it; errors are ignored (it may have exited already).
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The port a fixture server writes to `port_file` once it listens (it renames a complete file into place, so whatever
/// is there parses); panics with its log when it exits first or takes longer than 20 seconds.
pub(crate) fn wait_for_port(child: &mut Child, port_file: &Path, what: &str, log: &Path) -> u16 {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(port) = fs::read_to_string(port_file).ok().and_then(|text| text.trim().parse::<u16>().ok()) {
            return port;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before it served: {}", log_of(log));
        }
        if Instant::now() > deadline {
            stop(child);
            panic!("{what} did not come up within {STARTUP_TIMEOUT:?}: {}", log_of(log));
        }
        thread::sleep(POLL);
    }
}

/// A port that was free a moment ago on 127.0.0.1 (the listener is dropped again, so it can be taken).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port on 127.0.0.1");
    listener.local_addr().expect("local address of a bound listener").port()
}

/// A throwaway certificate authority and a server certificate it signed for `127.0.0.1` and `localhost`.
#[derive(Debug)]
pub struct Ca {
    /// Directory holding the keys, certificates and the openssl configuration files.
    pub dir: PathBuf,
    /// The CA certificate (PEM), for `http.sslCAInfo` / `git2::opts::set_ssl_cert_file`.
    pub ca_file: PathBuf,
}

impl Ca {
    /// Makes the CA (RSA 2048, `basicConstraints CA:TRUE`) and the server certificate (subjectAltName
    /// `IP:127.0.0.1, DNS:localhost`) in `dir` with the `openssl` command line tool.
    pub fn new(dir: &Path) -> Ca {
        let dir = absolute_dir(dir);
        let ca = Ca { ca_file: dir.join("ca.pem"), dir };
        let ca_key = ca.dir.join("ca.key");
        let ca_config = ca.dir.join("ca.cnf");
        let server_config = ca.dir.join("server.cnf");
        let server_ext = ca.dir.join("server.ext");
        let csr = ca.dir.join("server.csr");
        // Own configuration files: the system's openssl.cnf must not add or clash with extensions.
        write(
            &ca_config,
            "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n[dn]\nCN = prci test CA\n[v3_ca]\n\
             basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n",
        );
        write(&server_config, "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = 127.0.0.1\n");
        write(
            &server_ext,
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1, DNS:localhost\nsubjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid, issuer\n",
        );
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-config"])
            .arg(&ca_config)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca.ca_file));
        run(Command::new("openssl")
            .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-config"])
            .arg(&server_config)
            .arg("-keyout")
            .arg(ca.server_key())
            .arg("-out")
            .arg(&csr));
        run(Command::new("openssl")
            .args(["x509", "-req", "-sha256", "-days", "3650", "-CAcreateserial", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca.ca_file)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAserial")
            .arg(ca.dir.join("ca.srl"))
            .arg("-extfile")
            .arg(&server_ext)
            .arg("-out")
            .arg(ca.server_cert()));
        run(Command::new("openssl").arg("verify").arg("-CAfile").arg(&ca.ca_file).arg(ca.server_cert()));
        ca
    }

    /// The server certificate (PEM) for 127.0.0.1 / localhost.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server certificate's private key (PEM, unencrypted).
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
}

/// The bare repositories under a root directory, served over HTTPS (git's smart HTTP protocol, fetch and push)
/// on 127.0.0.1 by `fixtures/git_https.py`; killed on drop.
#[derive(Debug)]
pub struct HttpsRemote {
    /// `https://127.0.0.1:PORT/`; a repository `<root>/repo.git` is at `{base_url}repo.git`.
    pub base_url: String,
    /// The CA certificate the server's certificate verifies against.
    pub ca_file: PathBuf,
    child: Child,
}

impl HttpsRemote {
    /// Serves the repositories under `root`, with a fresh CA in `work/ca` and the server's stderr in
    /// `work/https.stderr`. With `token`, every request needs HTTP Basic credentials whose password is the token
    /// (any user name); others get 401 and `WWW-Authenticate: Basic realm="git"`. Pushes need no configuration of
    /// the repositories (the server enables `http.receivepack`). Panics with the server's stderr when it does
    /// not come up within 20 seconds.
    pub fn start(root: &Path, work: &Path, token: Option<&str>) -> HttpsRemote {
        let work = absolute_dir(work);
        let ca = Ca::new(&work.join("ca"));
        let port_file = work.join("https.port");
        let stderr_file = work.join("https.stderr");
        let _ = fs::remove_file(&port_file);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git_https.py");
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg("--root")
            .arg(root)
            .arg("--cert")
            .arg(ca.server_cert())
            .arg("--key")
            .arg(ca.server_key())
            .arg("--port-file")
            .arg(&port_file);
        if let Some(token) = token {
            command.arg("--token").arg(token);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&stderr_file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let port = wait_for_port(&mut child, &port_file, "git_https.py", &stderr_file);
        HttpsRemote { base_url: format!("https://127.0.0.1:{port}/"), ca_file: ca.ca_file, child }
    }

    /// URL of the repository `name` (relative to the served root, for instance `repo.git`).
    pub fn url(&self, name: &str) -> String {
        format!("{}{}", self.base_url, name.trim_start_matches('/'))
    }
}

impl Drop for HttpsRemote {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The system's sshd on 127.0.0.1 and a free port, letting the current user in with a throwaway key only;
/// killed on drop. Repositories are addressed by absolute path ([`SshRemote::url`]); the remote side runs the
/// `git-upload-pack` / `git-receive-pack` found on sshd's default `PATH`.
#[derive(Debug)]
pub struct SshRemote {
    /// The port sshd listens on (127.0.0.1 only).
    pub port: u16,
    /// The user allowed in: the current user (`id -un`).
    pub user: String,
    /// The client's private key, for `git2::Cred::ssh_key(user, None, key_file, None)`.
    pub key_file: PathBuf,
    /// One plain line `[127.0.0.1]:PORT ssh-ed25519 AAAA...`: the server's host key.
    pub known_hosts_file: PathBuf,
    child: Child,
}

impl SshRemote {
    /// Starts sshd in the foreground with its own configuration, host key, client key and authorized_keys in
    /// `work/sshd` (its log in `work/sshd/sshd.log`), and waits until it greets on its port. Panics with the log
    /// when it does not come up within 20 seconds (tried on a few ports).
    pub fn start(work: &Path) -> SshRemote {
        let dir = absolute_dir(&work.join("sshd"));
        let user = run(Command::new("id").arg("-un")).trim().to_string();
        assert!(!user.is_empty(), "`id -un` printed no user name");
        let host_key = dir.join("ssh_host_ed25519_key");
        // The client key is ed25519 in OpenSSH's own format (what `ssh-keygen` writes by default). libgit2 talks
        // SSH through libssh2, which the libssh2-sys crate builds with its OpenSSL backend; that backend reads
        // OpenSSH-format RSA/ECDSA/ed25519 keys (libssh2 >= 1.9 with OpenSSL >= 1.1.1) and derives the public key
        // from the private one, so `Cred::ssh_key(user, None, key_file, None)` works. Checked against the
        // system's libssh2 1.10 (OpenSSL 3 backend): public key authentication with this key succeeds. A
        // libssh2 built on libgcrypt or mbedTLS could not read it: `-t rsa -b 3072 -m PEM` would be the fallback.
        let key_file = dir.join("id_ed25519");
        for key in [&host_key, &key_file] {
            // ssh-keygen asks before overwriting; a second start in the same directory starts afresh.
            let _ = fs::remove_file(key);
            let _ = fs::remove_file(key.with_extension("pub"));
            run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "prci-test", "-f"]).arg(key));
        }
        let authorized_keys = dir.join("authorized_keys");
        fs::copy(key_file.with_extension("pub"), &authorized_keys).expect("copy the client's public key to authorized_keys");
        // sshd refuses to start without its privilege separation directory. Not being able to create it (not
        // root) is reported by sshd itself.
        let _ = fs::create_dir_all(PRIVSEP_DIR);
        let sshd = std::env::var_os(SSHD_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_SSHD));
        let config = dir.join("sshd_config");
        let log = dir.join("sshd.log");
        let mut failures = Vec::new();
        for _ in 0..SSHD_ATTEMPTS {
            let port = free_port();
            write(
                &config,
                &format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\n\
                     PermitRootLogin prohibit-password\nPidFile none\nAllowUsers {user}\nPrintMotd no\nX11Forwarding no\n",
                    host_key.display(),
                    authorized_keys.display(),
                ),
            );
            let mut child = Command::new(&sshd)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(&log))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e} (package openssh-server)", sshd.display()));
            if greets(&mut child, port) {
                let known_hosts_file = dir.join("known_hosts");
                let host_public = fs::read_to_string(host_key.with_extension("pub")).expect("read the host's public key");
                // "ssh-ed25519 AAAA... comment": the key type and the key, without the comment.
                let host_public: Vec<&str> = host_public.split_whitespace().take(2).collect();
                write(&known_hosts_file, &format!("[127.0.0.1]:{port} {}\n", host_public.join(" ")));
                return SshRemote { port, user, key_file, known_hosts_file, child };
            }
            stop(&mut child);
            let output = log_of(&log);
            let lost_port = output.contains("Address already in use") || output.contains("Cannot bind any address");
            failures.push(format!("port {port}: {output}"));
            if !lost_port {
                break;
            }
        }
        panic!("sshd ({}) did not come up: {}", sshd.display(), failures.join("\n"));
    }

    /// `ssh://USER@127.0.0.1:PORT/abs/path` for the repository at the absolute path `repo_path` (no
    /// percent-encoding: keep such paths free of spaces and `%`).
    pub fn url(&self, repo_path: &Path) -> String {
        assert!(repo_path.is_absolute(), "ssh remotes are addressed by absolute path, not {}", repo_path.display());
        format!("ssh://{}@127.0.0.1:{}{}", self.user, self.port, repo_path.display())
    }

    /// The server's host key in SSH wire format (the known_hosts line's base64 field, decoded): what
    /// `git2::CertHostkey::hostkey()` reports in a `certificate_check` callback for this server.
    pub fn host_key(&self) -> Vec<u8> {
        let line = fs::read_to_string(&self.known_hosts_file).expect("read the known_hosts file");
        decode_base64(line.split_whitespace().nth(2).expect("a key in the known_hosts line"))
    }
}

/// Standard base64 (padding optional), as in OpenSSH public keys.
fn decode_base64(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut bits, mut count) = (0u32, 0u32);
    for byte in text.bytes().take_while(|&byte| byte != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {text}"),
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

impl Drop for SshRemote {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Whether the sshd `child` greets with an OpenSSH banner on `port` before [`STARTUP_TIMEOUT`]; false as soon as
/// it exits (for instance because another process took the port).
fn greets(child: &mut Child, port: u16) -> bool {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        if let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) {
            // Whoever answers must be an sshd: a process that grabbed the port in between would not say this.
            let mut banner = [0u8; 64];
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            if let Ok(n) = stream.read(&mut banner) {
                if banner[..n].starts_with(b"SSH-2.0-OpenSSH") {
                    return matches!(child.try_wait(), Ok(None));
                }
            }
        }
        thread::sleep(POLL);
    }
    false
}

/// A TCP listener on 127.0.0.1 that accepts every connection and then neither reads nor writes: a TLS or SSH
/// client talking to it waits forever unless it has a timeout. Its thread and connections outlive the value.
#[derive(Debug)]
pub struct SilentRemote {
    /// The port it listens on (127.0.0.1 only).
    pub port: u16,
}

impl SilentRemote {
    /// Binds a free port and starts holding connections open.
    pub fn start() -> SilentRemote {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port on 127.0.0.1");
        let port = listener.local_addr().expect("local address of a bound listener").port();
        thread::Builder::new()
            .name(format!("silent-remote-{port}"))
            .spawn(move || {
                // Kept, not dropped: a dropped stream would close the connection and the client would notice.
                let mut held = Vec::new();
                for stream in listener.incoming().flatten() {
                    held.push(stream);
                }
            })
            .expect("spawn the silent remote's thread");
        SilentRemote { port }
    }

    /// `SCHEME://127.0.0.1:PORT/silent.git`, for instance with `https` or `ssh` (`ssh://git@...` for ssh, which
    /// needs a user name).
    pub fn url(&self, scheme: &str) -> String {
        let user = if scheme == "ssh" { "git@" } else { "" };
        format!("{scheme}://{user}127.0.0.1:{}/silent.git", self.port)
    }
}

//! The test side of tests/registry.rs: Debian's docker-registry started on a free
//! loopback port (plain, or htpasswd auth over a self-signed TLS cert), its access log to
//! count requests in, and a small server that serves one image with a fault.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const USER: &str = "tester";
pub const PASSWORD: &str = "secret";
/// bcrypt of PASSWORD (cost 4): docker-registry's htpasswd wants bcrypt.
const HTPASSWD: &str = "tester:$2b$04$qjLr.kzaxhBYyIqPQILdue6i4qVR/Z20D.LkBk/VjNv69yTN2of7W\n";

/// Whether the registry binary is here; prints why a test is skipped when not.
pub fn have_registry() -> bool {
    let ok = Path::new(REGISTRY_BIN).is_file();
    if !ok {
        eprintln!("skipped: {REGISTRY_BIN} is missing (apt-get install docker-registry)");
    }
    ok
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A docker-registry of its own, killed when dropped.
pub struct Registry {
    pub addr: String,
    pub dir: PathBuf,
    child: Child,
}

impl Registry {
    /// Plain HTTP, no auth.
    pub fn plain(dir: &Path) -> Registry {
        Registry::start(dir, false)
    }

    /// htpasswd auth (USER/PASSWORD) over TLS with a self-signed cert for 127.0.0.1,
    /// whose CA is `ca_dir()/ca.crt`.
    pub fn secure(dir: &Path) -> Registry {
        Registry::start(dir, true)
    }

    /// TLS that wants a client certificate signed by the CA (`http.tls.clientcas`), no
    /// other auth. `client_dir()` holds the CA and a client pair (`client.cert`, `.key`).
    pub fn mutual(dir: &Path) -> Registry {
        Registry::start_with(dir, true, true)
    }

    /// The CA and a client certificate and key, as a `--cert-dir`.
    pub fn client_dir(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// A `--cert-dir` with the registry's CA and a client pair signed by another CA,
    /// which the registry refuses.
    pub fn foreign_client_dir(&self) -> PathBuf {
        let out = self.dir.join("foreign");
        fs::create_dir_all(&out).unwrap();
        let d = self.dir.display();
        let script = format!(
            "set -e; cd {d}
             cp certs/ca.crt foreign/ca.crt
             openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout other-ca.key \
               -out other-ca.crt -subj /CN=strata-test-other-ca
             openssl req -newkey rsa:2048 -nodes -keyout foreign/client.key -out other.csr \
               -subj /CN=strata-test-stranger
             openssl x509 -req -in other.csr -CA other-ca.crt -CAkey other-ca.key \
               -CAcreateserial -days 2 -out foreign/client.cert -extfile client-ext.cnf"
        );
        let st = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl failed");
        out
    }

    fn start(dir: &Path, secure: bool) -> Registry {
        Registry::start_with(dir, secure, false)
    }

    fn start_with(dir: &Path, secure: bool, mutual: bool) -> Registry {
        fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            dir.join("data").display()
        );
        if mutual {
            make_cert(dir);
            make_client_cert(dir);
            cfg.push_str(&format!(
                "  tls:\n    certificate: {0}/server.crt\n    key: {0}/key.pem\n\
                 \x20   clientcas:\n      - {0}/certs/ca.crt\n",
                dir.display()
            ));
        } else if secure {
            make_cert(dir);
            fs::write(dir.join("htpasswd"), HTPASSWD).unwrap();
            cfg.push_str(&format!(
                "  tls:\n    certificate: {0}/server.crt\n    key: {0}/key.pem\n\
                 auth:\n  htpasswd:\n    realm: strata-test\n    path: {0}/htpasswd\n",
                dir.display()
            ));
        }
        fs::write(dir.join("config.yml"), cfg).unwrap();
        let log = fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let r = Registry {
            addr,
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&r.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Access-log lines of requests with this method whose URI contains `part`.
    pub fn requests(&self, method: &str, part: &str) -> usize {
        let needle = format!("\"{method} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle) && l.contains(part) && !l.contains("level="))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA of its own (`certs/ca.crt`) and a server cert for 127.0.0.1 signed by it, by
/// openssl (webpki takes no CA cert as a server's).
fn make_cert(dir: &Path) {
    fs::create_dir_all(dir.join("certs")).unwrap();
    fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let d = dir.display();
    let script = format!(
        "set -e; cd {d}
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout ca.key -out certs/ca.crt \
           -subj /CN=strata-test-ca
         openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj /CN=127.0.0.1
         openssl x509 -req -in server.csr -CA certs/ca.crt -CAkey ca.key -CAcreateserial \
           -days 2 -out server.crt -extfile ext.cnf"
    );
    openssl(&script);
}

/// A client certificate signed by the CA `make_cert` made: `client/client.cert` and
/// `client/client.key`, beside a copy of the CA (`client/ca.crt`).
fn make_client_cert(dir: &Path) {
    fs::create_dir_all(dir.join("client")).unwrap();
    fs::write(
        dir.join("client-ext.cnf"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let d = dir.display();
    let script = format!(
        "set -e; cd {d}
         cp certs/ca.crt client/ca.crt
         openssl req -newkey rsa:2048 -nodes -keyout client/client.key -out client.csr \
           -subj /CN=strata-test-client
         openssl x509 -req -in client.csr -CA certs/ca.crt -CAkey ca.key -CAcreateserial \
           -days 2 -out client/client.cert -extfile client-ext.cnf"
    );
    openssl(&script);
}

/// Run an openssl `script` with sh, quietly; it must succeed.
fn openssl(script: &str) {
    let st = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(st.success(), "openssl failed");
}

/// What the fault server does wrong.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None = 0,
    /// The layer's bytes with one flipped (right length).
    CorruptBlob = 1,
    /// Half the layer, then the connection closes.
    DiesMidBlob = 2,
    /// A Docker-Content-Digest header that is not the manifest's digest.
    ManifestDigest = 3,
    /// The first answer for the layer dies halfway; later ones honour `Range`.
    DiesOnceThenRanges = 4,
    /// The first answer for the layer dies halfway; later ones ignore `Range` (whole blob).
    DiesOnceNoRanges = 5,
    /// A token service (`/token`, tokens `t1`, `t2`, …); the layer refuses `t1` with a 401,
    /// as a registry refuses a token that expired.
    TokenExpires = 6,
    /// A token service; the layer refuses every token.
    TokenRefused = 7,
}

/// What the serving threads share.
#[derive(Default)]
struct Shared {
    fault: AtomicU8,
    /// Whether a `DiesOnce…` fault has struck.
    died: AtomicBool,
    /// The `Range` header of each layer request ("" for none).
    ranges: Mutex<Vec<String>>,
    /// Tokens issued.
    tokens: AtomicU8,
}

/// One image (manifest, config, layers by digest) served over plain HTTP, with a fault.
pub struct FaultServer {
    pub addr: String,
    shared: Arc<Shared>,
}

impl FaultServer {
    /// Serve `repo:tag` = the manifest `manifest` (OCI), and `blobs` by digest.
    pub fn start(
        repo: &str,
        tag: &str,
        manifest: Vec<u8>,
        blobs: Vec<(String, Vec<u8>)>,
    ) -> FaultServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        let f = shared.clone();
        let repo = repo.to_string();
        let tag = tag.to_string();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { break };
                let (f, repo, tag, manifest, blobs) = (
                    f.clone(),
                    repo.clone(),
                    tag.clone(),
                    manifest.clone(),
                    blobs.clone(),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &f, &repo, &tag, &manifest, &blobs);
                });
            }
        });
        FaultServer { addr, shared }
    }

    pub fn set(&self, f: Fault) {
        self.shared.fault.store(f as u8, Ordering::SeqCst);
        self.shared.died.store(false, Ordering::SeqCst);
        self.shared.ranges.lock().unwrap().clear();
        self.shared.tokens.store(0, Ordering::SeqCst);
    }

    /// Tokens issued since the last `set`.
    pub fn tokens(&self) -> u8 {
        self.shared.tokens.load(Ordering::SeqCst)
    }

    /// The `Range` header of each layer request since the last `set` ("" for none).
    pub fn ranges(&self) -> Vec<String> {
        self.shared.ranges.lock().unwrap().clone()
    }
}

fn serve(
    conn: TcpStream,
    shared: &Shared,
    repo: &str,
    tag: &str,
    manifest: &[u8],
    blobs: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    // A TLS hello (our client tries TLS first on localhost): not spoken here.
    let mut first = [0u8; 1];
    if conn.peek(&mut first)? == 0 || first[0] == 0x16 {
        return Ok(());
    }
    let mut r = BufReader::new(conn.try_clone()?);
    let mut w = conn;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut len = 0usize;
        let mut range = String::new();
        let mut authz = String::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("range:") {
                range = v.trim().to_string();
            }
            if let Some(v) = h
                .strip_prefix("Authorization:")
                .or(h.strip_prefix("authorization:"))
            {
                authz = v.trim().to_string();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let f = shared.fault.load(Ordering::SeqCst);
        let md = format!("sha256:{}", sha256_hex(manifest));
        let tokens = f == Fault::TokenExpires as u8 || f == Fault::TokenRefused as u8;
        let unauthorized = |w: &mut TcpStream| {
            let addr = w.local_addr()?;
            let challenge = format!("Bearer realm=\"http://{addr}/token\",service=\"fault\"");
            let body =
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            respond(w, 401, &[("WWW-Authenticate", challenge)], body)
        };
        if tokens && path.starts_with("/token") {
            let n = shared.tokens.fetch_add(1, Ordering::SeqCst) + 1;
            respond(
                &mut w,
                200,
                &[],
                format!("{{\"token\":\"t{n}\"}}").as_bytes(),
            )?;
            continue;
        }
        let is_layer_path = blobs
            .iter()
            .any(|(d, b)| b.len() > 4096 && path == format!("/v2/{repo}/blobs/{d}"));
        let refused = tokens
            && (!authz.starts_with("Bearer t")
                || (is_layer_path && (f == Fault::TokenRefused as u8 || authz == "Bearer t1")));
        if refused {
            unauthorized(&mut w)?;
        } else if path == "/v2/" {
            respond(&mut w, 200, &[], b"{}")?;
        } else if path == format!("/v2/{repo}/manifests/{tag}")
            || path == format!("/v2/{repo}/manifests/{md}")
        {
            let digest = if f == Fault::ManifestDigest as u8 {
                format!("sha256:{}", "0".repeat(64))
            } else {
                md.clone()
            };
            let headers = [
                (
                    "Content-Type",
                    "application/vnd.oci.image.manifest.v1+json".to_string(),
                ),
                ("Docker-Content-Digest", digest),
            ];
            respond(&mut w, 200, &headers, manifest)?;
        } else if let Some((d, b)) = blobs
            .iter()
            .find(|(d, _)| path == format!("/v2/{repo}/blobs/{d}"))
        {
            let is_layer = b.len() > 4096;
            if is_layer {
                shared.ranges.lock().unwrap().push(range.clone());
            }
            let once = f == Fault::DiesOnceThenRanges as u8 || f == Fault::DiesOnceNoRanges as u8;
            if is_layer && once && !shared.died.swap(true, Ordering::SeqCst) {
                write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())?;
                w.write_all(&b[..b.len() / 2])?;
                w.flush()?;
                return Ok(());
            }
            let start = range
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            if let (Some(start), true) = (start, f == Fault::DiesOnceThenRanges as u8) {
                write!(
                    w,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\n\
                     Content-Range: bytes {start}-{}/{}\r\n\r\n",
                    b.len() - start,
                    b.len() - 1,
                    b.len()
                )?;
                w.write_all(&b[start..])?;
                w.flush()?;
            } else if is_layer && f == Fault::CorruptBlob as u8 {
                let mut bad = b.clone();
                let mid = bad.len() / 2;
                bad[mid] ^= 0xff;
                respond(&mut w, 200, &[], &bad)?;
            } else if is_layer && f == Fault::DiesMidBlob as u8 {
                write!(w, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())?;
                w.write_all(&b[..b.len() / 2])?;
                w.flush()?;
                return Ok(()); // the connection closes: the registry "died"
            } else {
                let _ = d;
                respond(&mut w, 200, &[], b)?;
            }
        } else {
            let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
            respond(
                &mut w,
                404,
                &[("Content-Type", "application/json".into())],
                body,
            )?;
        }
    }
}

fn respond(
    w: &mut TcpStream,
    code: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match code {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    write!(
        w,
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\n",
        body.len()
    )?;
    for (k, v) in headers {
        write!(w, "{k}: {v}\r\n")?;
    }
    w.write_all(b"\r\n")?;
    w.write_all(body)?;
    w.flush()
}

/// sha256 by the coreutils tool (the test crate has no hash of its own).
pub fn sha256_hex(b: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

//! The connection to one registry: TLS (the system's CAs, a cert dir, or unverified),
//! plain HTTP for localhost and `--tls-verify=false`, the `WWW-Authenticate` dance, and
//! errors that name the registry; oci-client speaks the distribution API over it.

use anyhow::{anyhow, bail, Context, Result};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use reqwest::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::auth::{self, Creds};
use super::certs::{self, Certs};
use super::hub::{self, describe};

const USER_AGENT: &str = concat!("strata-image/", env!("CARGO_PKG_VERSION"));
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A registry silent this long mid-transfer is taken for dead.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// How to reach registries: from the command line.
#[derive(Clone, Debug, Default)]
pub struct ConnOpts {
    /// `Some(false)`: no certificate check, and plain HTTP if the registry speaks no TLS.
    /// `None`: verified, but localhost may speak plain HTTP (as docker allows).
    pub tls_verify: Option<bool>,
    /// CA certificates (`*.crt`) to trust besides the system's, as docker's certs.d.
    pub cert_dir: Option<PathBuf>,
    /// The credentials file to read and write instead of docker's and podman's.
    pub authfile: Option<PathBuf>,
}

/// How `/v2/` answered without credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    None,
    Basic,
    /// A token service: realm and service from the header.
    Bearer {
        realm: String,
        service: String,
    },
}

/// One registry, reached and probed.
pub struct Conn {
    /// As the user named it: `127.0.0.1:5000`, `docker.io`.
    pub registry: String,
    /// Where its API is: `registry-1.docker.io` for docker.io.
    pub host: String,
    pub scheme: &'static str,
    pub challenge: Challenge,
    pub http: reqwest::Client,
    pub oci: oci_client::Client,
    rt: tokio::runtime::Runtime,
    authfile: Option<PathBuf>,
    /// Whether our requests carry a client certificate (mutual TLS).
    client_cert: bool,
}

/// A repository of the registry, with the credentials that opened it.
pub struct Repo<'a> {
    pub conn: &'a Conn,
    /// `library/busybox`.
    pub path: String,
    /// For oci-client's calls: this repository (its tag is never used).
    pub oref: oci_client::Reference,
    /// The Authorization header of our own requests (a token is replaced when it expires).
    authz: Mutex<Option<HeaderValue>>,
    creds: Option<Creds>,
    /// Where the credentials came from, for errors.
    pub creds_from: Option<String>,
    op: RegistryOperation,
    /// Whether a token was renewed: a refusal after that is not an expiry.
    renewed: AtomicBool,
}

impl Conn {
    /// Reach `registry` and learn how it wants to be authenticated.
    pub fn open(registry: &str, o: &ConnOpts) -> Result<Conn> {
        install_crypto();
        let host = hub::api_host(registry);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("start the network runtime")?;
        let insecure = o.tls_verify == Some(false);
        let certs = certs::load(registry, o.cert_dir.as_deref())?;
        let client_cert = certs.identity.is_some();
        let http = http_client(insecure, &certs)?;
        let identity = certs.identity.as_ref().map(|(p, _)| p.as_path());
        let (scheme, challenge) = rt.block_on(probe(&http, registry, &host, insecure, identity))?;
        let protocol = match scheme {
            "http" => ClientProtocol::HttpsExcept(vec![host.clone()]),
            _ => ClientProtocol::Https,
        };
        let oci = oci_client::Client::try_from(ClientConfig {
            protocol,
            accept_invalid_certificates: insecure,
            extra_root_certificates: certs
                .cas
                .into_iter()
                .map(|data| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data,
                })
                .collect(),
            connect_timeout: Some(CONNECT_TIMEOUT),
            read_timeout: Some(READ_TIMEOUT),
            user_agent: USER_AGENT,
            ..Default::default()
        })
        .map_err(|e| anyhow!("{registry}: {e}"))?;
        Ok(Conn {
            registry: registry.to_string(),
            host,
            scheme,
            challenge,
            http,
            oci,
            rt,
            authfile: o.authfile.clone(),
            client_cert,
        })
    }

    /// Run a future of the network side to its end.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }

    /// `scheme://host`.
    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }

    /// Open repository `path` for `op`, with the saved credentials for it if any.
    pub fn repo(&self, path: &str, op: RegistryOperation) -> Result<Repo<'_>> {
        let creds = auth::lookup(&self.registry, path, self.authfile.as_deref())?;
        self.repo_as(path, op, creds)
    }

    /// Open repository `path` for `op` with `creds`: a token fetched if the registry
    /// wants one (each request then carries it), or basic credentials.
    pub fn repo_as(
        &self,
        path: &str,
        op: RegistryOperation,
        creds: Option<Creds>,
    ) -> Result<Repo<'_>> {
        let oref = oci_client::Reference::with_tag(
            self.registry.clone(),
            path.to_string(),
            "latest".into(),
        );
        let creds_from = creds.as_ref().map(|c| c.from.clone());
        let authz = self.block_on(self.authorize(&oref, path, op, creds.as_ref()))?;
        Ok(Repo {
            conn: self,
            path: path.to_string(),
            oref,
            authz: Mutex::new(authz),
            creds,
            creds_from,
            op,
            renewed: AtomicBool::new(false),
        })
    }

    /// The Authorization header for `path`: a token from the token service if the
    /// registry has one (the dance run anew on each call), basic credentials, or none.
    async fn authorize(
        &self,
        oref: &oci_client::Reference,
        path: &str,
        op: RegistryOperation,
        creds: Option<&Creds>,
    ) -> Result<Option<HeaderValue>> {
        let from = creds.map(|c| c.from.as_str());
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.user.clone(), c.pass.clone()),
            None => RegistryAuth::Anonymous,
        };
        Ok(match (&self.challenge, creds) {
            (Challenge::None, _) | (Challenge::Basic, None) => None,
            // Nothing to fetch: every request carries the credentials, and a refusal
            // says so where it happens.
            (Challenge::Basic, Some(c)) => Some(basic_header(&c.user, &c.pass)?),
            (Challenge::Bearer { realm, .. }, _) => {
                let token = self
                    .oci
                    .auth(oref, &auth, op)
                    .await
                    .map_err(|e| self.explain(e, path, from))
                    .with_context(|| format!("get a token for {path} from {realm}"));
                let token = match token {
                    // oci-client's own client, which runs the dance, has no identity.
                    Err(e) if self.client_cert => {
                        return Err(
                            e.context("the token service is asked without the client certificate")
                        )
                    }
                    t => t?,
                };
                match token {
                    Some(t) => {
                        let mut h = HeaderValue::from_str(&format!("Bearer {t}"))
                            .context("the token service sent a token no header can carry")?;
                        h.set_sensitive(true);
                        Some(h)
                    }
                    None => None,
                }
            }
        })
    }

    /// An oci-client error as the user should read it: what failed, on which registry,
    /// and what to do about a refusal.
    /// `from`: where the credentials given came from.
    pub fn explain(
        &self,
        e: OciDistributionError,
        path: &str,
        from: Option<&str>,
    ) -> anyhow::Error {
        let name = format!("{}/{path}", self.registry);
        let from = from_note(from);
        match e {
            OciDistributionError::UnauthorizedError { .. } => {
                anyhow!("{name}: unauthorized{from}: {}", self.login_hint())
            }
            OciDistributionError::AuthenticationFailure(m) => anyhow!(
                "{}: authentication failed{from}: {}: {}",
                self.registry,
                m.trim(),
                self.login_hint()
            ),
            OciDistributionError::RegistryError { envelope, .. } => {
                let msgs: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                anyhow!("{name}: the registry says: {}", msgs.join("; "))
            }
            OciDistributionError::ServerError { code, message, .. } => anyhow!(
                "{name}: the registry answered {code}: {}",
                short_text(&message)
            ),
            OciDistributionError::RequestError(e)
                if e.status()
                    .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
            {
                anyhow!("{name}: unauthorized{from}: {}", self.login_hint())
            }
            OciDistributionError::RequestError(e) => self.unreachable(&e),
            other => anyhow!("{name}: {other}"),
        }
    }

    /// A transport error, naming the registry (and, for docker.io, what it is).
    pub fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        anyhow!("{}: {}", describe(&self.registry), chain(e))
    }

    fn login_hint(&self) -> String {
        format!(
            "the registry wants credentials it was not given or refused \
             (strata-image login {})",
            self.registry
        )
    }
}

impl Repo<'_> {
    /// An oci-client error of this repository's, as `Conn::explain` says it.
    pub fn explain(&self, e: OciDistributionError) -> anyhow::Error {
        self.conn.explain(e, &self.path, self.creds_from.as_deref())
    }

    /// `registry/path`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.conn.registry, self.path)
    }

    /// `scheme://host/v2/path/`.
    pub fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.conn.base(), self.path)
    }

    /// A request of ours, with the credentials if it goes to the registry itself: an
    /// upload Location on another host (or dropped to plain HTTP) gets none
    /// (CVE-2020-15157 class).
    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.conn.http.request(method, url);
        let ours = format!("{}/", self.conn.base());
        match self.authz() {
            Some(h) if url.starts_with(&ours) => r.header(AUTHORIZATION, h),
            _ => r,
        }
    }

    fn authz(&self) -> Option<HeaderValue> {
        self.authz.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Send the request `build` makes (again, if need be: it must be replayable). A
    /// token can expire mid-pull (docker.io's last 5 minutes; a big layer takes longer):
    /// a 401 to a request that carried one gets a new token, once, and the request is
    /// sent again. Outer error: no new token; inner: the transport's.
    pub async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Result<reqwest::Response, reqwest::Error>> {
        let used = self.authz();
        let resp = match build().send().await {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        let bearer = matches!(self.conn.challenge, Challenge::Bearer { .. });
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED || !bearer || used.is_none() {
            return Ok(Ok(resp));
        }
        drop(resp);
        // Another request may have renewed it already: then that token is the new one.
        if self.authz() == used {
            let fresh = self
                .conn
                .authorize(&self.oref, &self.path, self.op, self.creds.as_ref())
                .await
                .with_context(|| {
                    format!(
                        "{}: the token expired, and a new one was refused",
                        self.name()
                    )
                })?;
            *self.authz.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        }
        self.renewed.store(true, Ordering::Relaxed);
        Ok(build().send().await)
    }

    /// A non-success answer to one of our requests, as an error naming `what`.
    pub async fn refused(&self, what: &str, resp: reqwest::Response) -> anyhow::Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            let from = from_note(self.creds_from.as_deref());
            let renewed = if self.renewed.load(Ordering::Relaxed) {
                ", even with a new token"
            } else {
                ""
            };
            return anyhow!(
                "{}: {what}: unauthorized ({status}){renewed}{from}: {}",
                self.name(),
                self.conn.login_hint()
            );
        }
        match registry_errors(&body) {
            Some(m) => anyhow!("{}: {what}: {m}", self.name()),
            None => anyhow!("{}: {what}: {status}: {}", self.name(), short_text(&body)),
        }
    }
}

/// ` (credentials from …)` for a refusal, so that the user knows which to fix.
fn from_note(from: Option<&str>) -> String {
    match from {
        Some(f) => format!(" (credentials from {f})"),
        None => String::new(),
    }
}

/// The `errors` of a distribution error body: `MANIFEST_UNKNOWN: manifest unknown`.
fn registry_errors(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let errs = v["errors"].as_array()?;
    let msgs: Vec<String> = errs
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                e["code"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

/// At most one line of a body, for an error message.
fn short_text(s: &str) -> String {
    let line = s.trim().lines().next().unwrap_or("");
    line.chars().take(200).collect()
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// reqwest's rustls needs a crypto provider: ring's. rustls 0.23.48 deprecates it for
/// lacking post-quantum key exchange; aws-lc-rs has that but a large C build, and a
/// registry transfer of public layers gains little from it.
#[allow(deprecated)]
fn install_crypto() {
    // Err: one is in place already (an earlier connection's).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn basic_header(user: &str, pass: &str) -> Result<HeaderValue> {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut h = HeaderValue::from_str(&format!("Basic {b}")).context("credentials")?;
    h.set_sensitive(true);
    Ok(h)
}

/// Localhost may speak plain HTTP without `--tls-verify=false` (docker's rule).
fn is_local(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

fn http_client(insecure: bool, certs: &Certs) -> Result<reqwest::Client> {
    let mut roots = Vec::new();
    for pem in &certs.cas {
        roots.extend(reqwest::Certificate::from_pem_bundle(pem)?);
    }
    let mut b = reqwest::Client::builder();
    if let Some((_, pem)) = &certs.identity {
        b = b.identity(reqwest::Identity::from_pem(pem)?);
    }
    b.danger_accept_invalid_certs(insecure)
        .tls_certs_merge(roots)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .user_agent(USER_AGENT)
        .build()
        .context("make the HTTP client")
}

/// `GET /v2/`: over TLS, or plain HTTP where allowed when TLS is not spoken; the answer
/// tells how the registry authenticates.
async fn probe(
    http: &reqwest::Client,
    registry: &str,
    host: &str,
    insecure: bool,
    identity: Option<&Path>,
) -> Result<(&'static str, Challenge)> {
    let https = format!("https://{host}/v2/");
    let err = match http.get(&https).send().await {
        Ok(r) => return Ok(("https", challenge(registry, &r)?)),
        Err(e) => e,
    };
    // A TLS registry that wants a client certificate: not one to retry in plain HTTP
    // (it would answer 400 to that, and the real cause would be lost).
    if let Some(alert) = client_cert_alert(&err) {
        match identity {
            None => bail!(
                "{}: the registry wants a TLS client certificate ({alert:?}): put one and \
                 its key in --cert-dir as NAME.cert and NAME.key",
                describe(registry)
            ),
            Some(p) => bail!(
                "{}: the registry refused the client certificate {} ({alert:?})",
                describe(registry),
                p.display()
            ),
        }
    }
    if is_cert_error(&err) {
        bail!(
            "{}: its TLS certificate is not trusted: {} (give its CA with --cert-dir, or \
             --tls-verify=false)",
            describe(registry),
            chain(&err)
        );
    }
    if !(insecure || is_local(registry)) {
        bail!("{}: {}", describe(registry), chain(&err));
    }
    let plain = format!("http://{host}/v2/");
    match http.get(&plain).send().await {
        // Go's answer to plain HTTP on a TLS port: the registry does speak TLS, and the
        // TLS error is the cause. A registry that wants a client certificate may close
        // the connection before its alert is read, so the alert alone does not tell.
        Ok(r) if r.status() == reqwest::StatusCode::BAD_REQUEST => {
            let body = r.text().await.unwrap_or_default();
            if !body.contains("HTTP request to an HTTPS server") {
                bail!(
                    "{}: /v2/ answered 400 Bad Request: {}",
                    describe(registry),
                    short_text(&body)
                );
            }
            let hint = match identity {
                None => "; a registry that wants a TLS client certificate does this: put one \
                         and its key in --cert-dir as NAME.cert and NAME.key"
                    .to_string(),
                Some(p) => format!(
                    "; a registry that refuses the client certificate {} does this",
                    p.display()
                ),
            };
            bail!(
                "{}: the TLS connection failed: {}{hint}",
                describe(registry),
                chain(&err)
            )
        }
        Ok(r) => Ok(("http", challenge(registry, &r)?)),
        Err(e) => bail!(
            "{}: neither TLS ({}) nor plain HTTP ({}) answered",
            describe(registry),
            chain(&err),
            chain(&e)
        ),
    }
}

fn challenge(registry: &str, r: &reqwest::Response) -> Result<Challenge> {
    let status = r.status();
    if status.is_success() {
        return Ok(Challenge::None);
    }
    if status != reqwest::StatusCode::UNAUTHORIZED {
        bail!("{registry}: /v2/ answered {status}: not a registry (distribution API v2)");
    }
    let h = r
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let (scheme, params) = h.split_once(' ').unwrap_or((h, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Ok(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        bail!("{registry}: /v2/ wants authentication of an unknown kind: {h:?}");
    }
    let param = |k: &str| {
        params.split(',').find_map(|kv| {
            let (a, b) = kv.trim().split_once('=')?;
            a.eq_ignore_ascii_case(k)
                .then(|| b.trim_matches('"').to_string())
        })
    };
    let realm = param("realm")
        .ok_or_else(|| anyhow!("{registry}: a Bearer challenge without a realm: {h:?}"))?;
    Ok(Challenge::Bearer {
        realm,
        service: param("service").unwrap_or_default(),
    })
}

/// The TLS alert a server that checks client certificates sends, somewhere in the
/// error's causes (found as `is_cert_error` finds its error).
fn client_cert_alert(e: &(dyn std::error::Error + 'static)) -> Option<rustls::AlertDescription> {
    use rustls::AlertDescription as A;
    if let Some(rustls::Error::AlertReceived(a)) = e.downcast_ref::<rustls::Error>() {
        if matches!(
            a,
            A::CertificateRequired | A::BadCertificate | A::UnknownCA | A::CertificateUnknown
        ) {
            return Some(*a);
        }
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        if let Some(a) = client_cert_alert(inner) {
            return Some(a);
        }
    }
    e.source().and_then(client_cert_alert)
}

/// Whether a TLS certificate check failed somewhere in the error's causes (rustls's
/// error sits inside io::Errors, which hide it from `source()`).
fn is_cert_error(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
        return true;
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        if is_cert_error(inner) {
            return true;
        }
    }
    e.source().is_some_and(is_cert_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_registries() {
        assert!(is_local("localhost:5000"));
        assert!(is_local("127.0.0.1:5000"));
        assert!(is_local("localhost"));
        assert!(!is_local("registry.example:5000"));
        assert!(!is_local("docker.io"));
    }

    #[test]
    fn registry_error_bodies() {
        let b = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        assert_eq!(
            registry_errors(b).unwrap(),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert!(registry_errors("not json").is_none());
    }
}

//! strata-image pull and push against a real registry (Debian's docker-registry on a free
//! loopback port): push, re-push and re-pull that move no layer (the registry's log says
//! so), skopeo reading what we pushed and writing what we pull, a multi-platform index,
//! htpasswd auth over self-signed TLS with login/logout, unknown names, and a server that
//! lies or dies mid-pull: each a clear error with nothing partial in the store, and a
//! retry that completes.

mod common;
mod registry_support;

use common::store::{assert_fails, StoreEnv};
use common::test_rootfs;
use registry_support::*;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: {tool} is missing");
    }
    ok
}

/// The digest in push's last line (`TAG: digest: sha256:… size: N`).
fn pushed_digest(stdout: &str) -> String {
    let last = stdout.lines().last().unwrap_or_default();
    let d = last.split("digest: ").nth(1).unwrap_or_default();
    d.split_whitespace().next().unwrap_or_default().to_string()
}

fn image_id(e: &StoreEnv, name: &str) -> String {
    let v: Value = serde_json::from_str(&e.si(&["inspect", name]).ok().stdout).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

/// The size of the manifest's first layer.
fn blobs_len(m: &Value) -> u64 {
    m["layers"][0]["size"].as_u64().unwrap()
}

/// Nothing of a failed pull is left: no image, blob, layer dir or temp dir.
#[track_caller]
fn assert_empty(e: &StoreEnv) {
    assert_eq!(e.index()["manifests"], json!([]), "no image");
    assert_eq!(e.count("blobs/sha256"), 0, "no blob");
    assert_eq!(e.count("layers"), 0, "no layer dir");
    assert_eq!(e.count("tmp"), 0, "no temp dir left");
}

#[test]
fn push_pull_run_and_nothing_moves_twice() {
    if !have_registry() {
        return;
    }
    let e = StoreEnv::new("reg-push");
    let reg = Registry::plain(&e.dir.join("reg"));
    e.busybox("bb:1");
    e.si(&["run", "--name", "c1", "bb:1", "sh", "-c", "echo two > /two"])
        .ok();
    e.si(&["commit", "-q", "c1", "bb:2"]).ok();
    let dest = format!("{}/strata/bb:2", reg.addr);
    let out = e.si(&["push", "bb:2", &dest]);
    out.ok();
    assert_eq!(out.stdout.matches(": Pushed").count(), 2, "{}", out.stdout);
    let digest = pushed_digest(&out.stdout);
    assert!(digest.starts_with("sha256:"), "{}", out.stdout);
    if have("skopeo") {
        let o = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", &format!("docker://{dest}")])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).expect("skopeo inspect");
        assert_eq!(v["Digest"], digest.as_str(), "skopeo sees what we pushed");
        assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    }
    // A re-push HEADs and uploads nothing.
    let uploads = reg.requests("PATCH", "/blobs/uploads/");
    let out = e.si(&["push", "bb:2", &dest]);
    out.ok();
    assert_eq!(
        out.stdout.matches("Layer already exists").count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(pushed_digest(&out.stdout), digest);
    assert_eq!(reg.requests("PATCH", "/blobs/uploads/"), uploads);

    let e2 = StoreEnv::new("reg-pull");
    let out = e2.si(&["pull", &dest]);
    out.ok();
    assert_eq!(
        out.stdout.matches(": Pull complete").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("Digest: {digest}\n")),
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains(&format!("Status: Downloaded newer image for {dest}\n")));
    assert!(out.stdout.ends_with(&format!("{dest}\n")));
    assert_eq!(e2.run(&dest, &["cat", "/two"]), "two\n");
    assert_eq!(
        image_id(&e2, &dest),
        image_id(&e, "bb:2"),
        "the same config: the same ID"
    );
    // A second pull transfers no layer.
    let gets = reg.requests("GET", "/blobs/");
    let out = e2.si(&["pull", &dest]);
    out.ok();
    assert_eq!(
        out.stdout.matches(": Already exists").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(out
        .stdout
        .contains(&format!("Status: Image is up to date for {dest}\n")));
    assert_eq!(
        reg.requests("GET", "/blobs/"),
        gets,
        "no blob fetched again"
    );
    // Another tag of an image with the same base layer: only the new layer moves.
    let other = format!("{}/strata/base:1", reg.addr);
    e.si(&["push", "bb:1", &other]).ok();
    let out = e2.si(&["pull", "-q", &other]);
    out.ok();
    assert_eq!(out.stdout, format!("{other}\n"), "-q prints the name alone");
    assert_eq!(e2.count("layers"), 2, "the base layer is shared");
    assert_eq!(e2.count("tmp"), 0);
}

#[test]
fn skopeo_copy_in_pull_out_and_a_multi_platform_index() {
    if !have_registry() || !have("skopeo") || !have("curl") {
        return;
    }
    let e = StoreEnv::new("reg-multi");
    let reg = Registry::plain(&e.dir.join("reg"));
    e.busybox("bb:1");
    // skopeo reads our store as the OCI layout it is, and pushes it.
    let st = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:bb:1", e.store().display()))
        .arg(format!("docker://{}/sk/bb:1", reg.addr))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy");
    let e2 = StoreEnv::new("reg-multi-pull");
    e2.si(&["pull", &format!("{}/sk/bb:1", reg.addr)]).ok();
    assert_eq!(
        e2.run(&format!("{}/sk/bb:1", reg.addr), &["echo", "ok"]),
        "ok\n"
    );

    // An index by hand: this machine's platform → bb:1, another → bb:x.
    let rootfs = test_rootfs().to_str().unwrap();
    e.si(&["import", "-q", "-c", "CMD [\"echo\"]", rootfs, "bb:x"])
        .ok();
    let repo = format!("{}/multi", reg.addr);
    let mine = e.si(&["push", "bb:1", &format!("{repo}:mine")]);
    let theirs = e.si(&["push", "bb:x", &format!("{repo}:theirs")]);
    let host = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let entry = |out: &common::Output, arch: &str| {
        let d = pushed_digest(&out.stdout);
        let size: u64 = out
            .stdout
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
               "size": size, "platform": {"os": "linux", "architecture": arch}})
    };
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&theirs, other), entry(&mine, host)]});
    let body = serde_json::to_vec(&index).unwrap();
    let st = Command::new("curl")
        .args(["-sf", "-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.oci.image.index.v1+json")
        .arg("--data-binary")
        .arg(String::from_utf8(body.clone()).unwrap())
        .arg(format!(
            "http://{repo_host}/v2/multi/manifests/latest",
            repo_host = reg.addr
        ))
        .status()
        .unwrap();
    assert!(st.success(), "PUT the index");
    let out = e2.si(&["pull", &repo]);
    out.ok();
    let index_digest = format!("sha256:{}", sha256_hex(&body));
    assert!(
        out.stdout.contains(&format!("Digest: {index_digest}\n")),
        "{}",
        out.stdout
    );
    assert_eq!(
        image_id(&e2, &repo),
        image_id(&e, "bb:1"),
        "this machine's platform"
    );
    let out = e2.si(&["pull", "--platform", &format!("linux/{other}"), &repo]);
    out.ok();
    assert_eq!(
        image_id(&e2, &repo),
        image_id(&e, "bb:x"),
        "--platform picks"
    );
    let out = e2.si(&["pull", "--platform", "linux/s390x", &repo]);
    assert_fails(
        &out,
        &["no manifest for linux/s390x", "linux/amd64", "linux/arm64"],
    );
}

#[test]
fn htpasswd_over_self_signed_tls_login_and_logout() {
    if !have_registry() || !have("openssl") {
        return;
    }
    let e = StoreEnv::new("reg-auth");
    let reg = Registry::secure(&e.dir.join("reg"));
    e.busybox("bb:1");
    let authfile = e.dir.join("auth/auth.json");
    let af = authfile.to_str().unwrap();
    let ca = reg.ca_dir();
    let ca = ca.to_str().unwrap();
    let dest = format!("{}/private/bb:1", reg.addr);
    let out = e.si(&["push", "--authfile", af, "bb:1", &dest]);
    assert_fails(&out, &[&reg.addr, "not trusted", "--cert-dir"]);
    let out = e.si(&["push", "--authfile", af, "--cert-dir", ca, "bb:1", &dest]);
    assert_fails(
        &out,
        &["unauthorized", &format!("strata-image login {}", reg.addr)],
    );
    let login = |pass: &str| {
        e.si(&[
            "login",
            "--authfile",
            af,
            "--cert-dir",
            ca,
            "-u",
            USER,
            "-p",
            pass,
            &reg.addr,
        ])
    };
    assert_fails(&login("wrong"), &["refused the user name or password"]);
    assert!(!authfile.exists(), "nothing saved for a refused login");
    let out = login(PASSWORD);
    out.ok();
    assert_eq!(out.stdout, "Login Succeeded\n");
    let saved = fs::read_to_string(&authfile).unwrap();
    assert!(!saved.contains(PASSWORD), "base64, as docker writes it");
    assert_eq!(
        fs::metadata(&authfile).unwrap().permissions().mode() & 0o777,
        0o600
    );
    e.si(&["push", "--authfile", af, "--cert-dir", ca, "bb:1", &dest])
        .ok();
    // --tls-verify=false: no certificate check (and the same credentials file).
    let e2 = StoreEnv::new("reg-auth-pull");
    e2.si(&["pull", "--authfile", af, "--tls-verify=false", &dest])
        .ok();
    assert_eq!(e2.run(&dest, &["echo", "in"]), "in\n");
    let out = e.si(&["logout", "--authfile", af, &reg.addr]);
    out.ok();
    assert_eq!(
        out.stdout,
        format!("Removed login credentials for {}\n", reg.addr)
    );
    let e3 = StoreEnv::new("reg-auth-out");
    let out = e3.si(&["pull", "--authfile", af, "--cert-dir", ca, &dest]);
    assert_fails(&out, &["unauthorized"]);
    assert_empty(&e3);
    assert_fails(
        &e.si(&["logout", "--authfile", af, &reg.addr]),
        &["not logged in"],
    );
}

#[test]
fn unknown_names_are_clear_errors() {
    if !have_registry() {
        return;
    }
    let e = StoreEnv::new("reg-unknown");
    let reg = Registry::plain(&e.dir.join("reg"));
    e.busybox("bb:1");
    e.si(&["push", "bb:1", &format!("{}/known/bb:1", reg.addr)])
        .ok();
    let e2 = StoreEnv::new("reg-unknown-pull");
    let out = e2.si(&["pull", &format!("{}/nope/bb:1", reg.addr)]);
    // distribution 2.8 says MANIFEST_UNKNOWN for a repository it never saw.
    assert_fails(
        &out,
        &[&format!("{}/nope/bb", reg.addr), "manifest 1", "UNKNOWN"],
    );
    let out = e2.si(&["pull", &format!("{}/known/bb:2", reg.addr)]);
    assert_fails(&out, &["manifest 2", "MANIFEST_UNKNOWN"]);
    assert_empty(&e2);
    let out = e.si(&["push", "sha256:0123", &format!("{}/x:1", reg.addr)]);
    assert_fails(&out, &["sha256:0123"]);
    let closed = format!("127.0.0.1:{}/x:1", free_port());
    assert_fails(&e2.si(&["pull", &closed]), &[&closed.replace("/x:1", "")]);
}

#[test]
fn a_lying_or_dying_server_leaves_nothing_and_a_retry_completes() {
    let e = StoreEnv::new("reg-fault");
    let id = e.busybox("bb:1");
    let idx = e.index();
    let md = idx["manifests"][0]["digest"].as_str().unwrap().to_string();
    let blob = |d: &str| fs::read(e.store().join("blobs/sha256").join(&d[7..])).unwrap();
    let manifest = blob(&md);
    let m: Value = serde_json::from_slice(&manifest).unwrap();
    let mut blobs = vec![];
    for d in [&m["config"]["digest"], &m["layers"][0]["digest"]] {
        let d = d.as_str().unwrap();
        blobs.push((d.to_string(), blob(d)));
    }
    let srv = FaultServer::start("f/bb", "1", manifest, blobs);
    let name = format!("{}/f/bb:1", srv.addr);
    let e2 = StoreEnv::new("reg-fault-pull");
    let layer = m["layers"][0]["digest"].as_str().unwrap();
    let cases = [
        (
            Fault::ManifestDigest,
            vec!["manifest 1", "hashes to", md.as_str()],
        ),
        (Fault::CorruptBlob, vec![layer, "corrupt"]),
        (Fault::DiesMidBlob, vec![layer, &srv.addr]),
    ];
    for (fault, needles) in cases {
        srv.set(fault);
        let out = e2.si(&["pull", &name]);
        assert_fails(&out, &needles);
        assert_empty(&e2);
    }
    // A transfer that breaks off once resumes where it stopped (a registry that honours
    // ranges), or starts again and skips what it has (one that does not).
    let half = blobs_len(&m) / 2;
    for (fault, second) in [
        (Fault::DiesOnceThenRanges, format!("bytes={half}-")),
        (Fault::DiesOnceNoRanges, format!("bytes={half}-")),
    ] {
        srv.set(fault);
        let e3 = StoreEnv::new("reg-fault-resume");
        e3.si(&["pull", &name]).ok();
        assert_eq!(image_id(&e3, &name), id, "{fault:?}");
        assert_eq!(srv.ranges(), vec![String::new(), second], "{fault:?}");
        assert_eq!(e3.count("tmp"), 0);
    }
    // A token that expires mid-pull is renewed once; one refused again fails clearly.
    srv.set(Fault::TokenExpires);
    let e4 = StoreEnv::new("reg-fault-token");
    e4.si(&["pull", &name]).ok();
    assert_eq!(image_id(&e4, &name), id);
    assert_eq!(srv.tokens(), 2, "one token, and one more when it expired");
    srv.set(Fault::TokenRefused);
    let e5 = StoreEnv::new("reg-fault-refused");
    let out = e5.si(&["pull", &name]);
    assert_fails(&out, &[layer, "unauthorized", "even with a new token"]);
    assert_empty(&e5);
    srv.set(Fault::None);
    e2.si(&["pull", &name]).ok();
    assert_eq!(image_id(&e2, &name), id);
    assert_eq!(e2.run(&name, &["echo", "retried"]), "retried\n");
    assert!(Path::new(&e2.store().join("layers")).is_dir());
}

/// A docker credential helper on PATH (`credsStore`, `credHelpers` in docker's
/// config.json) gives the credentials, asked as docker asks: `get`, the registry on stdin.
#[test]
fn docker_credential_helpers() {
    if !have_registry() || !have("openssl") {
        return;
    }
    let e = StoreEnv::new("reg-helper");
    let reg = Registry::secure(&e.dir.join("reg"));
    e.busybox("bb:1");
    let bin = e.dir.join("bin");
    let asked = e.dir.join("asked");
    fs::create_dir_all(&bin).unwrap();
    // `good` knows this registry; `bad` has a wrong password; `none` knows nothing.
    for (name, body) in [
        (
            "good",
            format!(
                r#"printf '%s\n' "$url" >> {asked}
case "$url" in {addr}) printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}' "$url" ;;
*) echo "credentials not found in native keychain"; exit 1 ;; esac"#,
                asked = asked.display(),
                addr = reg.addr
            ),
        ),
        (
            "bad",
            format!(r#"printf '{{"Username":"{USER}","Secret":"nope"}}'"#),
        ),
        (
            "none",
            "echo 'credentials not found in native keychain'; exit 1".to_string(),
        ),
    ] {
        let p = bin.join(format!("docker-credential-{name}"));
        let script =
            format!("#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r url || true\n{body}\n");
        fs::write(&p, script).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let docker = e.dir.join("docker");
    fs::create_dir_all(&docker).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let ca = reg.ca_dir();
    let dest = format!("{}/helped/bb:1", reg.addr);
    let with_config = |doc: Value, args: &[&str]| {
        fs::write(docker.join("config.json"), doc.to_string()).unwrap();
        let mut c = e.cmd();
        c.env("PATH", &path)
            .env("DOCKER_CONFIG", &docker)
            .env("HOME", &e.dir)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("REGISTRY_AUTH_FILE")
            .args(args);
        common::run_cmd(&mut c, common::TIMEOUT)
    };
    let push = ["push", "--cert-dir", ca.to_str().unwrap(), "bb:1", &dest];
    with_config(json!({"credsStore": "good"}), &push).ok();
    assert_eq!(
        fs::read_to_string(&asked).unwrap(),
        format!("{}\n", reg.addr),
        "the helper was asked for this registry, by name"
    );
    // A registry's own helper beats the store's.
    let doc = json!({"credsStore": "good", "credHelpers": {reg.addr.clone(): "bad"}});
    let out = with_config(doc, &push);
    assert_fails(&out, &["unauthorized", "docker-credential-bad"]);
    // A helper with nothing for the registry: anonymous, refused.
    let out = with_config(json!({"credsStore": "none"}), &push);
    assert_fails(&out, &["unauthorized"]);
    let out = with_config(json!({"credsStore": "missing"}), &push);
    assert_fails(&out, &["docker-credential-missing", &reg.addr]);
    let e2 = StoreEnv::new("reg-helper-pull");
    let mut c = e2.cmd();
    fs::write(
        docker.join("config.json"),
        json!({"credHelpers": {reg.addr.clone(): "good"}}).to_string(),
    )
    .unwrap();
    c.env("PATH", &path)
        .env("DOCKER_CONFIG", &docker)
        .env("HOME", &e.dir)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE")
        .args(["pull", "--cert-dir", ca.to_str().unwrap(), &dest]);
    common::run_cmd(&mut c, common::TIMEOUT).ok();
    assert_eq!(e2.run(&dest, &["echo", "helped"]), "helped\n");
}

/// Mutual TLS: a registry that wants a client certificate (docker-registry's
/// `http.tls.clientcas`) gets the `client.cert` + `client.key` of `--cert-dir`, as
/// docker's certs.d gives them; without one the error says what the registry refused.
#[test]
fn client_certificates_in_the_cert_dir() {
    if !have_registry() || !have("openssl") {
        return;
    }
    let e = StoreEnv::new("reg-mtls");
    let reg = Registry::mutual(&e.dir.join("reg"));
    e.busybox("bb:1");
    let dest = format!("{}/mtls/bb:1", reg.addr);
    let ca_only = reg.ca_dir();
    let out = e.si(&[
        "push",
        "--cert-dir",
        ca_only.to_str().unwrap(),
        "bb:1",
        &dest,
    ]);
    assert_fails(
        &out,
        &[&reg.addr, "wants a TLS client certificate", "NAME.cert"],
    );
    let client = reg.client_dir();
    let cd = client.to_str().unwrap();
    let out = e.si(&["push", "--cert-dir", cd, "bb:1", &dest]);
    out.ok();
    assert!(out.stdout.contains(": Pushed"), "{}", out.stdout);
    let e2 = StoreEnv::new("reg-mtls-pull");
    e2.si(&["pull", "--cert-dir", cd, &dest]).ok();
    assert_eq!(e2.run(&dest, &["echo", "mutual"]), "mutual\n");
    // A certificate from a CA the registry does not trust.
    let foreign = reg.foreign_client_dir();
    let out = e2.si(&["pull", "--cert-dir", foreign.to_str().unwrap(), &dest]);
    assert_fails(&out, &["refuse", "the client certificate", "client.cert"]);
    // Half a pair is a mistake, said as docker says it.
    let half = e.dir.join("half");
    fs::create_dir_all(&half).unwrap();
    fs::copy(client.join("ca.crt"), half.join("ca.crt")).unwrap();
    fs::copy(client.join("client.cert"), half.join("client.cert")).unwrap();
    let out = e2.si(&["pull", "--cert-dir", half.to_str().unwrap(), &dest]);
    assert_fails(&out, &["missing key", "client.key", "client.cert"]);
}

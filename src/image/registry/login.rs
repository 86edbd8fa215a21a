//! `login` and `logout`: credentials checked against the registry (its `/v2/` with basic
//! auth, or its token service) before they are saved; removed from every file that has
//! them.

use anyhow::{bail, Result};
use oci_client::RegistryOperation;
use reqwest::Method;
use std::path::PathBuf;

use super::auth::{self, Creds};
use super::client::{Challenge, Conn, ConnOpts};

/// Check `user`/`pass` against `registry`, then save them; the file written.
pub fn login(registry: &str, user: &str, pass: &str, o: &ConnOpts) -> Result<PathBuf> {
    let conn = Conn::open(registry, o)?;
    check(&conn, user, pass)?;
    let file = auth::target(o.authfile.as_deref())?;
    auth::save(&file, registry, user, pass)?;
    Ok(file)
}

/// A registry that wants no credentials takes any (as docker's login says too).
fn check(conn: &Conn, user: &str, pass: &str) -> Result<()> {
    let creds = Creds {
        user: user.to_string(),
        pass: pass.to_string(),
        from: "the command line".into(),
    };
    match &conn.challenge {
        Challenge::None => Ok(()),
        // Any repository: the token service checks the password before the scope.
        Challenge::Bearer { .. } => conn
            .repo_as(
                "library/strata-login-check",
                RegistryOperation::Pull,
                Some(creds),
            )
            .map(|_| ()),
        Challenge::Basic => {
            let repo = conn.repo_as("", RegistryOperation::Pull, Some(creds))?;
            let url = format!("{}/v2/", conn.base());
            conn.block_on(async {
                let resp = repo
                    .request(Method::GET, &url)
                    .send()
                    .await
                    .map_err(|e| conn.unreachable(&e))?;
                if !resp.status().is_success() {
                    bail!(
                        "{}: the registry refused the user name or password ({})",
                        conn.registry,
                        resp.status()
                    );
                }
                Ok(())
            })
        }
    }
}

/// Forget the credentials for `registry`; the files they were in (none: not logged in).
pub fn logout(registry: &str, authfile: Option<&std::path::Path>) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for f in auth::files(authfile) {
        if auth::remove(&f, registry)? {
            out.push(f);
        }
    }
    if out.is_empty() {
        bail!("not logged in to {registry}");
    }
    Ok(out)
}

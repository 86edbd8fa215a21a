//! docker.io's several names: the one users write, the host its API is on, the keys
//! docker's and podman's credentials files use for it. Below both `auth` (which matches
//! file keys) and `client` (which connects), so that neither needs the other for them.

/// docker's default registry, as references name it.
pub const DOCKER_HUB: &str = "docker.io";
/// The host docker.io's API is on.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";
/// docker's key for docker.io in config.json (and the server URL its credential
/// helpers are asked about).
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// Every host name a credentials file may file docker.io under.
pub const DOCKER_HUB_NAMES: [&str; 3] = ["docker.io", "index.docker.io", DOCKER_HUB_HOST];

/// The host to connect to for `registry`.
pub fn api_host(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_HOST.to_string()
    } else {
        registry.to_string()
    }
}

/// `docker.io` is not just a name: say what it means when it cannot be reached.
pub fn describe(registry: &str) -> String {
    if registry == DOCKER_HUB {
        format!(
            "{DOCKER_HUB} (docker's default registry, {DOCKER_HUB_HOST}: a name without a \
             registry, such as busybox, means docker.io/library/busybox)"
        )
    } else {
        registry.to_string()
    }
}

/// `https://r:5000/v2/` or `index.docker.io` as the registry's name (`r:5000`, `docker.io`).
pub fn registry_name(s: &str) -> String {
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_io_is_explained() {
        assert!(describe("docker.io").contains("docker.io/library/busybox"));
        assert_eq!(describe("r:5000"), "r:5000");
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("r:5000"), "r:5000");
    }

    #[test]
    fn registry_names() {
        assert_eq!(registry_name("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_name("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(registry_name("r:5000"), "r:5000");
        assert_eq!(registry_name("docker.io"), "docker.io");
    }
}

//! What `crossdns check` verifies of each cluster's credentials beyond the
//! config schema, without contacting any apiserver or running any plugin:
//! every file a kubeconfig names is readable and holds what it should
//! (PEM certificates, a key, a token), inline `*-data` decodes, and an exec
//! credential plugin (`aws eks get-token`, `gke-gcloud-auth-plugin`,
//! `kubelogin`) exists and is executable. `serve` keeps retrying a cluster
//! whose credentials fail; `check` names the cluster and the cause at once.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kube::config::{AuthInfo, Cluster, Kubeconfig};

use super::{ClusterSettings, Source};

/// The files an in-cluster client reads (kube's `incluster_config`).
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Why the credentials of `c` cannot work, if they cannot: one sentence,
/// naming the file, user or plugin at fault. `None` for a manifests source.
pub fn credentials_problem(c: &ClusterSettings) -> Option<String> {
    let Source::Kube {
        kubeconfig,
        context,
    } = &c.source
    else {
        return None;
    };
    let path = match kubeconfig {
        Some(p) => p.clone(),
        None => match std::env::var_os("KUBECONFIG") {
            Some(p) => PathBuf::from(p),
            None => return in_cluster_problem(),
        },
    };
    check_file(&path, context.as_deref()).err()
}

fn in_cluster_problem() -> Option<String> {
    // Not in a pod (no service environment): nothing to check here; `serve`
    // will say so if it cannot find credentials either.
    std::env::var_os("KUBERNETES_SERVICE_HOST")?;
    for file in ["token", "ca.crt"] {
        let path = Path::new(SA_DIR).join(file);
        if let Err(e) = std::fs::read(&path) {
            return Some(format!(
                "in-cluster service account: cannot read {}: {e}",
                path.display()
            ));
        }
    }
    None
}

fn check_file(path: &Path, context: Option<&str>) -> Result<(), String> {
    let shown = path.display();
    let kc = Kubeconfig::read_from(path)
        .map_err(|e| format!("kubeconfig {shown} cannot be read: {e}"))?;
    let ctx_name = context
        .map(str::to_owned)
        .or_else(|| kc.current_context.clone())
        .ok_or_else(|| {
            format!("kubeconfig {shown} has no current-context and none is configured")
        })?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.as_ref())
        .ok_or_else(|| format!("kubeconfig {shown} has no context {ctx_name:?}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| format!("kubeconfig {shown}: context {ctx_name:?} names cluster {:?}, which it does not define", ctx.cluster))?;
    check_cluster(base, cluster)
        .map_err(|e| format!("kubeconfig {shown}: cluster {:?}: {e}", ctx.cluster))?;
    if let Some(user) = &ctx.user {
        let auth = kc
            .auth_infos
            .iter()
            .find(|a| a.name == *user)
            .and_then(|a| a.auth_info.as_ref())
            .ok_or_else(|| format!("kubeconfig {shown}: context {ctx_name:?} names user {user:?}, which it does not define"))?;
        check_user(base, auth).map_err(|e| format!("kubeconfig {shown}: user {user:?}: {e}"))?;
    }
    Ok(())
}

/// Paths in a kubeconfig are relative to the kubeconfig's folder (as
/// kubectl reads them).
fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read(base: &Path, what: &str, p: &str) -> Result<Vec<u8>, String> {
    let path = resolve(base, p);
    std::fs::read(&path).map_err(|e| format!("{what} {} cannot be read: {e}", path.display()))
}

fn decode(what: &str, data: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("{what} is not base64: {e}"))
}

fn has_pem(what: &str, bytes: &[u8], label: &str) -> Result<(), String> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains(&format!("-----BEGIN {label}")) {
        Ok(())
    } else {
        Err(format!(
            "{what} holds no PEM {}",
            label.to_ascii_lowercase()
        ))
    }
}

fn check_cluster(base: &Path, c: &Cluster) -> Result<(), String> {
    if c.server.as_deref().is_none_or(str::is_empty) {
        return Err("has no server".to_owned());
    }
    if let Some(file) = &c.certificate_authority {
        has_pem(
            "certificate-authority",
            &read(base, "certificate-authority", file)?,
            "CERTIFICATE",
        )?;
    }
    if let Some(data) = &c.certificate_authority_data {
        has_pem(
            "certificate-authority-data",
            &decode("certificate-authority-data", data)?,
            "CERTIFICATE",
        )?;
    }
    Ok(())
}

fn check_user(base: &Path, a: &AuthInfo) -> Result<(), String> {
    if let Some(file) = &a.token_file {
        let token = read(base, "tokenFile", file)?;
        if String::from_utf8_lossy(&token).trim().is_empty() {
            return Err(format!(
                "tokenFile {} is empty",
                resolve(base, file).display()
            ));
        }
    }
    if let Some(file) = &a.client_certificate {
        has_pem(
            "client-certificate",
            &read(base, "client-certificate", file)?,
            "CERTIFICATE",
        )?;
    }
    if let Some(data) = &a.client_certificate_data {
        has_pem(
            "client-certificate-data",
            &decode("client-certificate-data", data)?,
            "CERTIFICATE",
        )?;
    }
    if let Some(file) = &a.client_key {
        has_pem("client-key", &read(base, "client-key", file)?, "")?;
    }
    if let Some(data) = &a.client_key_data {
        use secrecy::ExposeSecret as _;
        has_pem(
            "client-key-data",
            &decode("client-key-data", data.expose_secret())?,
            "",
        )?;
    }
    let cert = a.client_certificate.is_some() || a.client_certificate_data.is_some();
    let key = a.client_key.is_some() || a.client_key_data.is_some();
    if cert != key {
        return Err(
            "has a client certificate without its key, or a key without its certificate".to_owned(),
        );
    }
    if let Some(exec) = &a.exec {
        let command = exec
            .command
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| "exec credential plugin has no command".to_owned())?;
        if find_command(base, command).is_none() {
            let hint = exec
                .install_hint
                .as_deref()
                .map(|h| format!(" ({})", h.trim()))
                .unwrap_or_default();
            return Err(format!(
                "exec credential plugin {command:?} is not an executable file{}{hint}",
                if command.contains('/') {
                    ""
                } else {
                    " on PATH"
                }
            ));
        }
    }
    Ok(())
}

/// The executable `command` names: a path (relative to the kubeconfig, as
/// client-go resolves it) or a name on PATH.
fn find_command(base: &Path, command: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = if command.contains('/') {
        vec![resolve(base, command)]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(command)).collect())
            .unwrap_or_default()
    };
    candidates.into_iter().find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

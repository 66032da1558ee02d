//! HTTPS: browsers allow cameras off localhost only on secure origins, so a village room that
//! reaches the server over the extranet needs TLS. Either a certificate and key given in the
//! config, or a self-signed pair generated once and kept under `data_dir/tls/`.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::Error;

/// Where the server's certificate and key are, if TLS is on.
pub fn resolve(config: &Config) -> Result<Option<(PathBuf, PathBuf)>, Error> {
    match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => Ok(Some((cert.clone(), key.clone()))),
        (Some(_), None) | (None, Some(_)) => Err(Error::Tls("tls.cert and tls.key must be given together".into())),
        (None, None) if config.tls.self_signed => {
            let dir = config.data_dir.join("tls");
            Ok(Some(self_signed(&dir, &config.addr)?))
        }
        (None, None) => Ok(None),
    }
}

/// Generate (once) a self-signed certificate for localhost, 127.0.0.1 and the listen host.
fn self_signed(dir: &Path, addr: &str) -> Result<(PathBuf, PathBuf), Error> {
    let cert_path = dir.join("self-signed.crt");
    let key_path = dir.join("self-signed.key");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir)?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if let Some((host, _)) = addr.rsplit_once(':') {
        let host = host.trim_matches(['[', ']']);
        if !host.is_empty() && host != "0.0.0.0" && host != "::" && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Tls(format!("generating a self-signed certificate: {e}")))?;
    std::fs::write(&cert_path, certified.cert.pem())?;
    write_private(&key_path, certified.signing_key.serialize_pem().as_bytes())?;
    tracing::info!(path = %cert_path.display(), "generated a self-signed TLS certificate");
    Ok((cert_path, key_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}

//! Generated CA, server certificate and client certificates (rcgen), and the
//! rustls server configuration (ring only). Client certificates are
//! optional: one signed by the CA authenticates the connection, as the
//! apiserver's x509 client-certificate authenticator does (kubeadm's
//! kubeconfigs use them); without one, the bearer token must.

use std::sync::Arc;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// Server-side TLS material.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pem", &self.ca_pem)
            .finish_non_exhaustive()
    }
}

/// Install ring as the process-wide rustls provider; a provider already installed is fine.
pub(crate) fn install_ring_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// A fresh CA and a server certificate signed by it, for `names` (DNS names
/// or IP addresses); `None`: localhost and 127.0.0.1.
pub(crate) fn generate(names: Option<&[String]>) -> anyhow::Result<Tls> {
    install_ring_provider();
    let ca_key = KeyPair::generate().context("generating CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "fake-apiserver CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).context("self-signing CA")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().context("generating server key")?;
    let mut params = CertificateParams::new(Vec::<String>::new()).context("server params")?;
    let default = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    for name in names.unwrap_or(&default) {
        params.subject_alt_names.push(match name.parse() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.clone().try_into().context("server DNS name")?),
        });
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    params.distinguished_name = dn;
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .context("signing server certificate")?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).context("client CA root")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .context("client certificate verifier")?;
    let chain: Vec<CertificateDer<'static>> = vec![server_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("server certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca_cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
        issuer,
    })
}

impl Tls {
    /// A client certificate and key (PEM) for user `name`, signed by the CA.
    pub fn client_cert(&self, name: &str) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate().context("generating client key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("client params")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "system:masters");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing client certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

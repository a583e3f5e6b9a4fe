//! Black-box tests of RFC 8705 client certificate handling, on real certificates made with
//! rcgen: thumbprints, subject matching, chain validation, self-signed registration and the
//! forms in which a proxy forwards a certificate.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis_cert::{
    CertError, ChainError, ClientCertificate, DistinguishedName, MAX_HEADER_LEN, TlsSubject, TrustedCas,
    certificates_from_header_value, chain_from_header_value, check_jwk_x5c, from_header_value, matches_registered,
};
use portcullis_jose::{Algorithm, SigningKey};
use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber, date_time_ymd,
};
use serde_json::{Value, json};

/// 2027-01-15: inside rcgen's default validity (1975 to 4096).
const NOW: i64 = 1_800_000_000;

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn root(cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(cn);
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            params,
            key,
        }
    }

    fn intermediate(&self, cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(cn);
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        Self {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            params,
            key,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    fn issue(&self, params: &CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &self.issuer()).unwrap().der().to_vec()
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// C=GB, O=Example, OU=Portcullis, CN=client1 (in that ASN.1 order), clientAuth EKU, SANs of
/// every kind RFC 8705 §2.1.2 names.
fn client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(DnType::CountryName, DnValue::PrintableString("GB".try_into().unwrap()));
    dn.push(DnType::OrganizationName, "Example");
    dn.push(DnType::OrganizationalUnitName, "Portcullis");
    dn.push(DnType::CommonName, "client1");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.subject_alt_names = vec![
        SanType::DnsName("client.example.com".try_into().unwrap()),
        SanType::URI("https://client.example.com/id".try_into().unwrap()),
        SanType::IpAddress("192.0.2.7".parse().unwrap()),
        SanType::IpAddress("2001:db8::7".parse().unwrap()),
        SanType::Rfc822Name("Client@Example.com".try_into().unwrap()),
    ];
    params
}

fn with_dn(entries: &[(DnType, DnValue)]) -> CertificateParams {
    let mut params = client_params();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, value) in entries {
        params.distinguished_name.push(ty.clone(), value.clone());
    }
    params
}

fn one(der: Vec<u8>) -> ClientCertificate {
    ClientCertificate::from_der_chain(vec![der]).unwrap()
}

fn subject(name: &str, value: &str) -> TlsSubject {
    TlsSubject::from_metadata(name, value).unwrap()
}

fn dn(value: &str) -> TlsSubject {
    subject("tls_client_auth_subject_dn", value)
}

fn pem_of(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

// ---- ClientCertificate ----

#[test]
fn thumbprint_is_base64url_sha256_of_the_der() {
    let der = Ca::root("Root").issue(&client_params());
    let cert = one(der.clone());
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    assert_eq!(cert.thumbprint(), URL_SAFE_NO_PAD.encode(digest.as_ref()));
    assert_eq!(cert.thumbprint().len(), 43);
    assert!(
        cert.thumbprint()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(cert.der(), der.as_slice());
    assert!(cert.intermediates().is_empty());
}

#[test]
fn subject_is_rendered_in_rfc4514_order() {
    let cert = one(Ca::root("Root").issue(&client_params()));
    assert_eq!(cert.subject(), "CN=client1,OU=Portcullis,O=Example,C=GB");
    let escaped = one(Ca::root("Root").issue(&with_dn(&[
        (DnType::OrganizationName, "A+B, \"C\"".into()),
        (DnType::CommonName, " lead".into()),
    ])));
    assert_eq!(escaped.subject(), r#"CN=\ lead,O=A\+B\, \"C\""#);
    // What is rendered parses back to the same DN.
    let reparsed = DistinguishedName::parse_rfc4514(&escaped.subject()).unwrap();
    assert_eq!(&reparsed, escaped.subject_dn());
}

#[test]
fn chain_bounds_and_garbage() {
    let der = Ca::root("Root").issue(&client_params());
    assert!(matches!(
        ClientCertificate::from_der_chain(vec![]),
        Err(CertError::Malformed(_))
    ));
    // at most four intermediates: path building over client-chosen certificates is bounded
    assert!(ClientCertificate::from_der_chain(vec![der.clone(); 6]).is_err());
    assert!(ClientCertificate::from_der_chain(vec![der.clone(); 5]).is_ok());
    assert!(ClientCertificate::from_der_chain(vec![b"not a certificate".to_vec()]).is_err());
    assert!(ClientCertificate::from_der_chain(vec![der.clone(), b"junk".to_vec()]).is_err());
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(ClientCertificate::from_der_chain(vec![trailing]).is_err());
    assert!(ClientCertificate::from_der_chain(vec![vec![0x30; 17 * 1024]]).is_err());
    assert!(ClientCertificate::from_der_chain(vec![der[..der.len() - 1].to_vec()]).is_err());
}

#[test]
fn validity_period() {
    let mut params = client_params();
    params.not_before = date_time_ymd(2030, 1, 1);
    params.not_after = date_time_ymd(2031, 1, 1);
    let cert = one(Ca::root("Root").issue(&params));
    let start = 1_893_456_000; // 2030-01-01T00:00:00Z
    let end = 1_924_992_000; // 2031-01-01T00:00:00Z
    assert!(!cert.is_valid_at(start - 1));
    assert!(cert.is_valid_at(start));
    assert!(cert.is_valid_at(end));
    assert!(!cert.is_valid_at(end + 1));
}

// ---- RFC 8705 §2.1.2: subject DN ----

#[test]
fn dn_matches_as_java_and_openssl_write_it() {
    let cert = one(Ca::root("Root").issue(&client_params()));
    // Java X500Principal.getName(RFC2253) and openssl -nameopt RFC2253.
    assert!(cert.matches(&dn("CN=client1,OU=Portcullis,O=Example,C=GB")));
    // RFC 1779 / X500Principal.toString() style spacing, other case, names and OIDs.
    assert!(cert.matches(&dn("CN=client1, OU=Portcullis, O=Example, C=GB")));
    assert!(cert.matches(&dn("cn=CLIENT1,ou=portcullis,o=EXAMPLE,c=gb")));
    assert!(cert.matches(&dn(
        "commonName=client1 ,OU=  Portcullis,2.5.4.10=Example,OID.2.5.4.6=GB"
    )));
    // Java writes values of unknown types as #hex DER; a UTF8String "client1":
    assert!(cert.matches(&dn("2.5.4.3=#0c07636c69656e7431,OU=Portcullis,O=Example,C=GB")));
    // Hex escapes.
    assert!(cert.matches(&dn(r"CN=\63lient1,OU=Portcullis,O=Example,C=GB")));
}

#[test]
fn dn_order_is_rfc4514_order() {
    let cert = one(Ca::root("Root").issue(&client_params()));
    // The certificate's ASN.1 order written left to right (openssl's default one-line output
    // `C = GB, O = Example, ...`) is another DN under RFC 4514 and does not match.
    assert!(!cert.matches(&dn("C=GB,O=Example,OU=Portcullis,CN=client1")));
    assert!(!cert.matches(&dn("C = GB, O = Example, OU = Portcullis, CN = client1")));
}

#[test]
fn dn_mismatches() {
    let cert = one(Ca::root("Root").issue(&client_params()));
    for other in [
        "CN=client2,OU=Portcullis,O=Example,C=GB",
        "CN=client1,OU=Portcullis,O=Example,C=FR",
        "CN=client1,OU=Portcullis,O=Example",
        "CN=client1,O=Example,C=GB",
        "CN=client1,OU=Portcullis,O=Example,C=GB,DC=example",
        "UID=x,CN=client1,OU=Portcullis,O=Example,C=GB",
        "CN=client1+UID=x,OU=Portcullis,O=Example,C=GB",
        "CN=client 1,OU=Portcullis,O=Example,C=GB",
        "SN=client1,OU=Portcullis,O=Example,C=GB",
    ] {
        assert!(!cert.matches(&dn(other)), "{other} should not match");
    }
}

#[test]
fn dn_whitespace_escapes_and_string_types() {
    let ca = Ca::root("Root");
    let cert = one(ca.issue(&with_dn(&[
        (DnType::CountryName, DnValue::PrintableString("GB".try_into().unwrap())),
        (DnType::OrganizationName, "Smith, Jones  and   Partners".into()),
        (
            DnType::OrganizationalUnitName,
            DnValue::BmpString("Pörtcullis".try_into().unwrap()),
        ),
        (
            DnType::CommonName,
            DnValue::TeletexString("client1".try_into().unwrap()),
        ),
    ])));
    assert!(cert.matches(&dn(r"CN=client1,OU=PÖRTCULLIS,O=Smith\, Jones and Partners,C=GB")));
    assert!(cert.matches(&dn(
        r"CN=client1,OU=p\C3\B6rtcullis,O= smith\2c JONES AND partners ,C=GB"
    )));
    assert!(!cert.matches(&dn(r"CN=client1,OU=Portcullis,O=Smith\, Jones and Partners,C=GB")));
    assert!(!cert.matches(&dn(r"CN=client1,OU=Pörtcullis,O=Smith,C=GB")));
}

#[test]
fn dn_email_and_serial_number_attributes() {
    let email_oid = DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]);
    let cert = one(Ca::root("Root").issue(&with_dn(&[
        (DnType::CountryName, "GB".into()),
        (
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            DnValue::PrintableString("1234".try_into().unwrap()),
        ),
        (DnType::CommonName, "client1".into()),
        (email_oid, DnValue::Ia5String("client1@example.com".try_into().unwrap())),
    ])));
    // openssl -nameopt RFC2253:
    assert!(cert.matches(&dn(
        "emailAddress=client1@example.com,CN=client1,serialNumber=1234,C=GB"
    )));
    // Java RFC2253 (unknown types as OID=#hex; 0x16 is IA5String):
    let hex: String = b"client1@example.com".iter().map(|b| format!("{b:02x}")).collect();
    let java = format!("1.2.840.113549.1.9.1=#1613{hex},CN=client1,SERIALNUMBER=1234,C=GB");
    assert!(cert.matches(&dn(&java)));
    assert!(!cert.matches(&dn("CN=client1,serialNumber=1234,C=GB")));
    assert_eq!(
        cert.subject(),
        "emailAddress=client1@example.com,CN=client1,serialNumber=1234,C=GB"
    );
}

// ---- RFC 8705 §2.1.2: subjectAltName ----

#[test]
fn san_matching() {
    let cert = one(Ca::root("Root").issue(&client_params()));
    let yes = [
        ("tls_client_auth_san_dns", "client.example.com"),
        ("tls_client_auth_san_dns", "CLIENT.Example.COM"),
        ("tls_client_auth_san_uri", "https://client.example.com/id"),
        ("tls_client_auth_san_ip", "192.0.2.7"),
        ("tls_client_auth_san_ip", "2001:0db8:0000::0007"),
        ("tls_client_auth_san_email", "Client@Example.com"),
        // RFC 5280 §7.5: the domain compares case-insensitively
        ("tls_client_auth_san_email", "Client@example.COM"),
    ];
    for (name, value) in yes {
        assert!(cert.matches(&subject(name, value)), "{name}={value} should match");
    }
    let no = [
        ("tls_client_auth_san_dns", "other.example.com"),
        ("tls_client_auth_san_dns", "*.example.com"),
        ("tls_client_auth_san_dns", "example.com"),
        ("tls_client_auth_san_uri", "https://client.example.com/ID"),
        ("tls_client_auth_san_uri", "https://client.example.com/id/"),
        ("tls_client_auth_san_ip", "192.0.2.8"),
        ("tls_client_auth_san_ip", "::ffff:192.0.2.8"),
        ("tls_client_auth_san_ip", "2001:db8::8"),
        ("tls_client_auth_san_email", "other@example.com"),
        // ... and the local part exactly
        ("tls_client_auth_san_email", "client@Example.com"),
        // A DNS SAN value registered under another type does not match.
        ("tls_client_auth_san_uri", "dns:client.example.com"),
    ];
    for (name, value) in no {
        assert!(!cert.matches(&subject(name, value)), "{name}={value} should not match");
    }
    // The SAN types are not interchangeable, and a certificate without SANs matches none.
    let mut bare = client_params();
    bare.subject_alt_names.clear();
    let bare = one(Ca::root("Root").issue(&bare));
    assert!(!bare.matches(&subject("tls_client_auth_san_dns", "client.example.com")));
    assert!(!bare.matches(&subject("tls_client_auth_san_ip", "192.0.2.7")));
}

#[test]
fn wildcard_san_matches_only_literally() {
    let mut params = client_params();
    params.subject_alt_names = vec![SanType::DnsName("*.example.com".try_into().unwrap())];
    let cert = one(Ca::root("Root").issue(&params));
    assert!(cert.matches(&subject("tls_client_auth_san_dns", "*.example.com")));
    assert!(!cert.matches(&subject("tls_client_auth_san_dns", "client.example.com")));
}

#[test]
fn metadata_is_strict() {
    assert!(matches!(
        TlsSubject::from_metadata("tls_client_auth_san_ip", "not-an-ip"),
        Err(CertError::InvalidSubject { .. })
    ));
    for (name, value) in [
        ("tls_client_auth_subject_dn", ""),
        ("tls_client_auth_subject_dn", "client1"),
        ("tls_client_auth_subject_dn", "CN=a;O=b"),
        ("tls_client_auth_subject_dn", "NOPE=a"),
        ("tls_client_auth_san_dns", ""),
        ("tls_client_auth_san_dns", "a b.example"),
        ("tls_client_auth_san_dns", "bücher.example"),
        ("tls_client_auth_san_uri", "client.example.com/id"),
        ("tls_client_auth_san_uri", "https://a b"),
        ("tls_client_auth_san_ip", "192.0.2.256"),
        ("tls_client_auth_san_ip", "192.0.2.0/24"),
        ("tls_client_auth_san_email", "client.example.com"),
        ("tls_client_auth_san_email", "a@b@c"),
        ("tls_client_auth_san_email", "@example.com"),
        ("tls_client_auth_subject", "CN=a"),
    ] {
        let error = TlsSubject::from_metadata(name, value).unwrap_err();
        let message = error.to_string();
        assert!(message.len() < 200 && !message.contains('\n'), "{message}");
    }
    let ip = subject("tls_client_auth_san_ip", "2001:db8::7");
    assert_eq!(ip, TlsSubject::SanIp("2001:db8::7".parse::<IpAddr>().unwrap()));
    assert_eq!(ip.metadata_name(), "tls_client_auth_san_ip");
    assert_eq!(
        TlsSubject::from_metadata("tls_client_auth_subject_dn", "CN=x;")
            .unwrap_err()
            .to_string(),
        "the subject DN is not a valid RFC 4514 distinguished name: a value holds an unescaped special \
         character (\" ; < > or NUL)"
    );
}

// ---- RFC 8705 §2.1: chain validation ----

#[test]
fn trusted_ca_accepts_direct_and_intermediate_chains() {
    let root = Ca::root("Root");
    let intermediate = root.intermediate("Intermediate");
    let trusted = TrustedCas::from_pem(root.pem.as_bytes()).unwrap();
    assert_eq!(trusted.len(), 1);
    assert_eq!(trusted.subjects(), ["CN=Root"]);

    let direct = one(root.issue(&client_params()));
    trusted.verify(&direct, NOW).unwrap();

    let leaf = intermediate.issue(&client_params());
    let chained = ClientCertificate::from_der_chain(vec![leaf.clone(), intermediate.der.clone()]).unwrap();
    assert_eq!(chained.intermediates(), std::slice::from_ref(&intermediate.der));
    trusted.verify(&chained, NOW).unwrap();
    // Without the intermediate there is no path.
    assert_eq!(
        trusted.verify(&one(leaf.clone()), NOW),
        Err(CertError::Untrusted(ChainError::UnknownIssuer))
    );
    // Trusting the intermediate itself is enough for the bare leaf.
    let both = format!("{}{}", root.pem, intermediate.pem);
    let trusted_both = TrustedCas::from_pem(both.as_bytes()).unwrap();
    assert_eq!(trusted_both.len(), 2);
    trusted_both.verify(&one(leaf), NOW).unwrap();
}

#[test]
fn trusted_ca_refuses_other_cas_time_and_usage() {
    let root = Ca::root("Root");
    let trusted = TrustedCas::from_pem(root.pem.as_bytes()).unwrap();
    let untrusted = |e| Err(CertError::Untrusted(e));

    let stranger = one(Ca::root("Other Root").issue(&client_params()));
    assert_eq!(trusted.verify(&stranger, NOW), untrusted(ChainError::UnknownIssuer));
    // A CA with the trusted CA's name but another key: webpki finds the candidate issuer by
    // name, and its signature check fails.
    let impostor = one(Ca::root("Root").issue(&client_params()));
    assert_eq!(trusted.verify(&impostor, NOW), untrusted(ChainError::BadSignature));

    let mut expired = client_params();
    expired.not_before = date_time_ymd(2000, 1, 1);
    expired.not_after = date_time_ymd(2001, 1, 1);
    assert_eq!(
        trusted.verify(&one(root.issue(&expired)), NOW),
        untrusted(ChainError::Expired)
    );

    let mut future = client_params();
    future.not_before = date_time_ymd(2100, 1, 1);
    future.not_after = date_time_ymd(2101, 1, 1);
    assert_eq!(
        trusted.verify(&one(root.issue(&future)), NOW),
        untrusted(ChainError::NotYetValid)
    );

    let mut server_only = client_params();
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = one(root.issue(&server_only));
    assert_eq!(trusted.verify(&server_only, NOW), untrusted(ChainError::WrongUsage));

    let mut both = client_params();
    both.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    trusted.verify(&one(root.issue(&both)), NOW).unwrap();

    // RFC 5280 §4.2.1.12, as webpki applies it: no EKU extension means no restriction.
    let mut no_eku = client_params();
    no_eku.extended_key_usages.clear();
    trusted.verify(&one(root.issue(&no_eku)), NOW).unwrap();

    // A CA certificate is not a client certificate.
    let intermediate = root.intermediate("Intermediate");
    assert_eq!(
        trusted.verify(&one(intermediate.der.clone()), NOW),
        untrusted(ChainError::CaUsedAsEndEntity)
    );

    // A self-signed certificate chains to nothing.
    let key = KeyPair::generate().unwrap();
    let self_signed = one(client_params().self_signed(&key).unwrap().der().to_vec());
    assert_eq!(trusted.verify(&self_signed, NOW), untrusted(ChainError::UnknownIssuer));

    // A time before 1970 is not a time to validate at.
    assert!(trusted.verify(&one(root.issue(&client_params())), -1).is_err());
    let message = CertError::Untrusted(ChainError::WrongUsage).to_string();
    assert_eq!(
        message,
        "the client certificate is not valid for TLS client authentication"
    );
}

#[test]
fn trusted_ca_file_errors() {
    let root = Ca::root("Root");
    let leaf_pem = pem_of(&root.issue(&client_params()));
    assert!(matches!(TrustedCas::from_pem(b""), Err(CertError::CaFile(_))));
    assert!(matches!(
        TrustedCas::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        Err(CertError::CaFile(_))
    ));
    let with_leaf = format!("{}{}", root.pem, leaf_pem);
    let error = TrustedCas::from_pem(with_leaf.as_bytes()).unwrap_err();
    assert!(matches!(error, CertError::CaCertificate { index: 2, .. }), "{error:?}");
    assert!(
        error.to_string().starts_with("certificate #2 of the trusted CA file"),
        "{error}"
    );
    let garbage = format!(
        "{}-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n",
        root.pem
    );
    assert!(matches!(
        TrustedCas::from_pem(garbage.as_bytes()),
        Err(CertError::CaCertificate { index: 2, .. })
    ));
    let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        TrustedCas::from_pem(bad_base64.as_bytes()),
        Err(CertError::CaCertificate { index: 1, .. })
    ));
}

// ---- RFC 8705 §2.2: self-signed certificates registered in the JWKS ----

/// A self-signed certificate for a portcullis-jose key, and the JWK with `x5c`.
fn self_signed(alg: Algorithm, serial: u64) -> (SigningKey, Vec<u8>, Value) {
    let signing = SigningKey::generate(alg).unwrap();
    let der = self_signed_with(&signing, serial);
    let mut jwk = signing.public_jwk().to_json();
    jwk["x5c"] = json!([STANDARD.encode(&der)]);
    (signing, der, jwk)
}

fn self_signed_with(signing: &SigningKey, serial: u64) -> Vec<u8> {
    let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(signing.pkcs8().to_vec());
    let rcgen_alg = match signing.algorithm() {
        Algorithm::Ps256 => &rcgen::PKCS_RSA_SHA256,
        Algorithm::Es256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        _ => &rcgen::PKCS_ED25519,
    };
    let key = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, rcgen_alg).unwrap();
    let mut params = client_params();
    params.serial_number = Some(SerialNumber::from(serial));
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn self_signed_matches_only_the_registered_certificate() {
    let (signing, der, jwk) = self_signed(Algorithm::Es256, 1);
    let (_, other_der, other_jwk) = self_signed(Algorithm::Es256, 1);
    let jwks = json!({ "keys": [other_jwk, jwk] });
    let cert = one(der);
    assert!(matches_registered(&cert, &jwks));

    // Same subject, another key, not registered.
    let stranger = one(self_signed(Algorithm::Es256, 1).1);
    assert!(!matches_registered(&stranger, &jwks));
    // The same key in another certificate (another serial number) is another certificate.
    let reissued = one(self_signed_with(&signing, 2));
    assert_eq!(reissued.subject_dn(), cert.subject_dn());
    assert!(!matches_registered(&reissued, &jwks));
    // The registered certificate, but listed under a JWK for another key.
    let mut lying = signing.public_jwk().to_json();
    lying["x5c"] = json!([STANDARD.encode(&other_der)]);
    let other_cert = one(other_der);
    assert!(!matches_registered(&other_cert, &json!({ "keys": [lying] })));
    // No keys, no x5c, not a JWKS.
    assert!(!matches_registered(&cert, &json!({ "keys": [] })));
    assert!(!matches_registered(
        &cert,
        &json!({ "keys": [signing.public_jwk().to_json()] })
    ));
    assert!(!matches_registered(&cert, &json!([])));
    assert!(!matches_registered(&cert, &json!({ "keys": [{ "x5c": "nope" }] })));
    // An encryption key's certificate does not authenticate (RFC 7517 §4.2).
    let (_, der, mut jwk) = self_signed(Algorithm::Es256, 3);
    jwk["use"] = json!("enc");
    assert!(!matches_registered(&one(der), &json!({ "keys": [jwk] })));
}

#[test]
fn self_signed_for_every_key_type() {
    for alg in [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa] {
        let (_, der, jwk) = self_signed(alg, 7);
        check_jwk_x5c(&jwk).unwrap();
        assert!(matches_registered(&one(der), &json!({ "keys": [jwk] })), "{alg:?}");
    }
}

#[test]
fn jwk_x5c_registration_check() {
    let (_, der, jwk) = self_signed(Algorithm::Es256, 1);
    check_jwk_x5c(&jwk).unwrap();
    // No x5c: nothing to check.
    let mut bare = jwk.clone();
    bare.as_object_mut().unwrap().remove("x5c");
    check_jwk_x5c(&bare).unwrap();
    // A CA chain in x5c: the first certificate is the key's.
    let root = Ca::root("Root");
    let mut chained = jwk.clone();
    chained["x5c"] = json!([STANDARD.encode(&der), STANDARD.encode(&root.der)]);
    check_jwk_x5c(&chained).unwrap();

    let (_, other_der, other_jwk) = self_signed(Algorithm::Es256, 1);
    let refused = [
        // Another key's certificate.
        json!([STANDARD.encode(&other_der)]),
        // The right certificate second.
        json!([STANDARD.encode(&other_der), STANDARD.encode(&der)]),
        json!([]),
        json!("not an array"),
        json!([1]),
        json!(["!!!not base64!!!"]),
        json!([URL_SAFE_NO_PAD.encode(&der).replace(['-', '_'], "-") + "-"]),
        json!([STANDARD.encode(b"hello")]),
        json!([STANDARD.encode(&der), STANDARD.encode(b"junk")]),
        json!(vec![STANDARD.encode(&der); 9]),
    ];
    for x5c in refused {
        let mut bad = jwk.clone();
        bad["x5c"] = x5c;
        let error = check_jwk_x5c(&bad).unwrap_err();
        assert!(matches!(error, CertError::InvalidX5c(_)), "{error:?}");
    }
    // The x5c of an RSA certificate under an EC JWK.
    let (_, rsa_der, _) = self_signed(Algorithm::Ps256, 1);
    let mut mixed = other_jwk;
    mixed["x5c"] = json!([STANDARD.encode(&rsa_der)]);
    assert!(check_jwk_x5c(&mixed).is_err());
}

// ---- Forwarded certificates ----

#[test]
fn rfc9440_client_cert_and_chain() {
    let root = Ca::root("Root");
    let intermediate = root.intermediate("Intermediate");
    let leaf = intermediate.issue(&client_params());
    let header = format!(":{}:", STANDARD.encode(&leaf));
    assert_eq!(from_header_value(&header).unwrap(), leaf);
    assert_eq!(from_header_value(&format!(" \t{header} ")).unwrap(), leaf);
    // RFC 8941 §4.2.7: parsers should not insist on padding.
    let unpadded = format!(":{}:", STANDARD.encode(&leaf).trim_end_matches('='));
    assert_eq!(from_header_value(&unpadded).unwrap(), leaf);

    let chain = format!(
        ":{}:, :{}:",
        STANDARD.encode(&intermediate.der),
        STANDARD.encode(&root.der)
    );
    assert_eq!(
        chain_from_header_value(&chain).unwrap(),
        vec![intermediate.der.clone(), root.der.clone()]
    );
    assert!(chain_from_header_value("").unwrap().is_empty());
    assert!(chain_from_header_value(&format!("{chain},")).is_err());
    assert!(chain_from_header_value(&format!("{chain},,")).is_err());
    assert!(chain_from_header_value(&format!("{chain};a=1")).is_err());
    assert!(chain_from_header_value(&[header.as_str(); 9].join(",")).is_err());

    // The whole thing end to end.
    let trusted = TrustedCas::from_pem(root.pem.as_bytes()).unwrap();
    let chain = format!(":{}:", STANDARD.encode(&intermediate.der));
    let cert = ClientCertificate::from_der_chain(
        std::iter::once(from_header_value(&header).unwrap())
            .chain(chain_from_header_value(&chain).unwrap())
            .collect(),
    )
    .unwrap();
    trusted.verify(&cert, NOW).unwrap();
}

#[test]
fn url_encoded_and_plain_pem() {
    let root = Ca::root("Root");
    let intermediate = root.intermediate("Intermediate");
    let leaf = intermediate.issue(&client_params());
    let pem = pem_of(&leaf);

    // nginx $ssl_client_escaped_cert: everything but unreserved characters escaped.
    let nginx = utf8_percent_encode(&pem, NON_ALPHANUMERIC).to_string();
    assert!(nginx.starts_with("-----BEGIN%20CERTIFICATE-----%0A") || nginx.starts_with("%2D"));
    assert_eq!(from_header_value(&nginx).unwrap(), leaf);
    // AWS ALB: + = / left as they are.
    const ALB: &AsciiSet = &NON_ALPHANUMERIC.remove(b'+').remove(b'=').remove(b'/').remove(b'-');
    let alb = utf8_percent_encode(&pem, ALB).to_string();
    assert!(alb.starts_with("-----BEGIN%20CERTIFICATE-----%0A"));
    assert_eq!(from_header_value(&alb).unwrap(), leaf);
    // Plain PEM, with line breaks or with spaces in their place.
    assert_eq!(from_header_value(&pem).unwrap(), leaf);
    assert_eq!(from_header_value(&pem.replace('\n', " ")).unwrap(), leaf);
    // ALB passthrough sends the chain: the end entity comes first.
    let chain_pem = format!("{}{}", pem, pem_of(&intermediate.der));
    let alb_chain = utf8_percent_encode(&chain_pem, ALB).to_string();
    assert_eq!(from_header_value(&alb_chain).unwrap(), leaf);
    assert_eq!(
        certificates_from_header_value(&alb_chain).unwrap(),
        vec![leaf.clone(), intermediate.der.clone()]
    );
}

#[test]
fn header_garbage_is_refused() {
    let der = Ca::root("Root").issue(&client_params());
    let pem = pem_of(&der);
    let b64 = STANDARD.encode(&der);
    let too_long = format!(":{}:", "A".repeat(MAX_HEADER_LEN));
    let oversized_cert = format!(":{}:", STANDARD.encode(vec![0u8; 17 * 1024]));
    let garbage = [
        "",
        "   ",
        ":",
        "::",
        ":!!!:",
        ":aGVsbG8=:",
        "hello",
        "%",
        "%ZZ",
        "%FF%FE",
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----",
        &b64,
        &too_long,
        &oversized_cert,
    ];
    for value in garbage {
        let error = from_header_value(value).unwrap_err();
        assert!(matches!(error, CertError::Header(_)), "{error:?}");
        assert!(error.to_string().len() < 200);
    }
    for value in [
        format!(":{b64}:;param=1"),
        format!(":{b64}: junk"),
        format!("junk {pem}"),
        format!("{pem} junk"),
        format!("{pem}{pem}{pem}{pem}{pem}{pem}{pem}{pem}{pem}"),
        pem.replace("-----END CERTIFICATE-----", ""),
        format!(":{}:", &b64[1..]),
    ] {
        assert!(from_header_value(&value).is_err(), "{value:.60}");
    }
}

// ---- Never panics ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_der_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = ClientCertificate::from_der_chain(vec![bytes.clone()]);
        let _ = TrustedCas::from_pem(&bytes);
    }

    #[test]
    fn mutated_certificates_never_panic(position in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let der = mutation_base().clone();
        let mut mutated = der;
        let i = position.index(mutated.len());
        mutated[i] = byte;
        if let Ok(cert) = ClientCertificate::from_der_chain(vec![mutated.clone()]) {
            let _ = cert.subject();
            let _ = cert.matches(&dn("CN=client1,OU=Portcullis,O=Example,C=GB"));
            let _ = matches_registered(&cert, &json!({ "keys": [{ "kty": "EC", "crv": "P-256", "x": "", "y": "", "x5c": [STANDARD.encode(&mutated)] }] }));
        }
        let _ = from_header_value(&format!(":{}:", STANDARD.encode(&mutated)));
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let _ = from_header_value(&text);
        let _ = chain_from_header_value(&text);
        let _ = DistinguishedName::parse_rfc4514(&text);
        for name in ["tls_client_auth_subject_dn", "tls_client_auth_san_ip", "tls_client_auth_san_uri", "tls_client_auth_san_email"] {
            let _ = TlsSubject::from_metadata(name, &text);
        }
    }

    #[test]
    fn dn_shaped_text_never_panics(text in "([A-Za-z0-9.]{0,6}=([^,+]|\\\\[0-9a-fA-F,+#]){0,8}[,+]?){0,6}") {
        if let Ok(parsed) = DistinguishedName::parse_rfc4514(&text) {
            // Whatever parses renders to something that parses to the same DN.
            let rendered = parsed.to_rfc4514();
            prop_assert_eq!(DistinguishedName::parse_rfc4514(&rendered).ok(), Some(parsed));
        }
    }
}

fn mutation_base() -> &'static Vec<u8> {
    static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BASE.get_or_init(|| Ca::root("Root").issue(&client_params()))
}

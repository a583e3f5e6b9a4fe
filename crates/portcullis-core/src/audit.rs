//! The non-repudiation evidence log (issue 16 item 5): every signed message received or sent
//! (request objects, JARM responses, signed introspection responses, signed resource requests
//! and responses) is kept with what is needed to verify it again later (the message and the
//! public key it was verified or signed with), in an append-only, hash-chained log.
//!
//! Chain: entry `n` stores `prev_hash` (the hash of entry `n - 1`, or of the anchor) and
//! `hash = SHA-256(encoding)`, where the encoding (version 1) is, in this order:
//!
//! ```text
//! "portcullis-audit-v1" 0x00
//! seq (u64 big-endian) || prev_hash (32 bytes)
//! field(kind) || field(direction) || field(interaction_id) || field(client_id)
//! at (i64 big-endian) || field(alg) || field(key)
//! 0x01 || field(compact)                                   for a JWS
//! 0x02 || field(base) || field(signature) || opt(body)     for an HTTP message signature
//! ```
//!
//! with `field(x) = len(x) (u64 big-endian) || x` and `opt(x) = 0x00` (absent) or
//! `0x01 || field(x)`: every field is length-prefixed, so no two entries encode alike. The
//! anchor is where verification starts: nothing (`seq` 0, 32 zero bytes) until the retention
//! purge removes entries, then the last removed entry's `seq` and hash, so that a removed
//! first entry is still noticed.
//!
//! The chain makes any edit, removal or reordering by someone who does not recompute every
//! later hash visible; the signatures make the messages themselves unforgeable. Removing the
//! newest entries leaves no trace in the chain itself: `audit verify` prints the head, which an
//! operator can record elsewhere.

use std::fmt;

use portcullis_jose::{Algorithm, CompactJws, PublicJwk};

/// What kind of signed message an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// A signed request object pushed to PAR (RFC 9101, RFC 9126 §3).
    RequestObject,
    /// A JARM authorization response (FAPI 2.0 Message Signing §5.4).
    AuthorizationResponse,
    /// A signed introspection response (RFC 9701).
    IntrospectionResponse,
    /// A signed resource request (RFC 9421, FAPI 2.0 Message Signing §5.6).
    ResourceRequest,
    /// A signed resource response (RFC 9421, FAPI 2.0 Message Signing §5.7).
    ResourceResponse,
}

impl EvidenceKind {
    pub const ALL: [EvidenceKind; 5] = [
        Self::RequestObject,
        Self::AuthorizationResponse,
        Self::IntrospectionResponse,
        Self::ResourceRequest,
        Self::ResourceResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequestObject => "request_object",
            Self::AuthorizationResponse => "authorization_response",
            Self::IntrospectionResponse => "introspection_response",
            Self::ResourceRequest => "resource_request",
            Self::ResourceResponse => "resource_response",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether this server received the message or sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received,
    Sent,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Sent => "sent",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "received" => Some(Self::Received),
            "sent" => Some(Self::Sent),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed message itself, as it went over the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// A JWS in compact serialisation.
    Jws { compact: String },
    /// An HTTP message signature (RFC 9421): the signature base the signature covers, the
    /// signature, and the body when its `content-digest` (RFC 9530) is part of the base.
    HttpSignature {
        base: String,
        signature: Vec<u8>,
        body: Option<Vec<u8>>,
    },
}

/// One signed message with what is needed to verify it again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub kind: EvidenceKind,
    pub direction: Direction,
    /// The request's `x-fapi-interaction-id` (FAPI 2.0 Security Profile IA-02); a JARM
    /// response is filed under the interaction that pushed its request.
    pub interaction_id: String,
    pub client_id: String,
    /// Unix seconds.
    pub at: i64,
    /// The JWS algorithm name (HTTP signatures here use only algorithms identical to JWS ones:
    /// PS256, ES256, EdDSA/Ed25519).
    pub alg: String,
    /// The public JWK (JSON text) the message was verified with (received) or signed with
    /// (sent).
    pub key: String,
    pub proof: Proof,
}

impl Evidence {
    /// A JWS received or sent, with the key that verified or signed it.
    pub fn jws(
        kind: EvidenceKind,
        direction: Direction,
        interaction_id: &str,
        client_id: &str,
        at: i64,
        key: &PublicJwk,
        compact: &str,
    ) -> Self {
        let alg = CompactJws::parse(compact)
            .map(|j| j.header().alg.as_str().to_owned())
            .unwrap_or_default();
        Self {
            kind,
            direction,
            interaction_id: interaction_id.to_owned(),
            client_id: client_id.to_owned(),
            at,
            alg,
            key: key.to_json().to_string(),
            proof: Proof::Jws {
                compact: compact.to_owned(),
            },
        }
    }

    /// The `kid` of the key, if it has one.
    pub fn kid(&self) -> Option<String> {
        serde_json::from_str::<serde_json::Value>(&self.key)
            .ok()
            .and_then(|k| k.get("kid").and_then(|v| v.as_str()).map(str::to_owned))
    }

    /// Verifies the signature again with the stored key (and, for an HTTP signature with a
    /// body, that the body is the one the signature base's `content-digest` names).
    pub fn verify(&self) -> Result<(), String> {
        let alg = Algorithm::parse(&self.alg).map_err(|e| format!("algorithm: {e}"))?;
        let key: serde_json::Value =
            serde_json::from_str(&self.key).map_err(|_| "the stored key is not JSON".to_owned())?;
        let key = PublicJwk::from_json(&key).map_err(|e| format!("the stored key: {e}"))?;
        match &self.proof {
            Proof::Jws { compact } => {
                let jws = CompactJws::parse(compact).map_err(|e| format!("the JWS: {e}"))?;
                if jws.header().alg != alg {
                    return Err(format!(
                        "the JWS is signed with {}, the entry says {alg}",
                        jws.header().alg
                    ));
                }
                jws.verify(&key).map_err(|e| format!("the JWS signature: {e}"))
            }
            Proof::HttpSignature { base, signature, body } => {
                key.verify(alg, base.as_bytes(), signature)
                    .map_err(|e| format!("the HTTP message signature: {e}"))?;
                match body {
                    Some(body) => check_content_digest(base, body),
                    None => Ok(()),
                }
            }
        }
    }
}

/// RFC 9530 §2: the base's `"content-digest"` line holds a digest of `body`, checked by the same
/// rules the resource applied when it accepted the message (`portcullis-httpsig`).
fn check_content_digest(base: &str, body: &[u8]) -> Result<(), String> {
    let value = base
        .lines()
        .find_map(|l| l.strip_prefix("\"content-digest\": "))
        .ok_or_else(|| "a body is stored but the signature base covers no content-digest".to_owned())?;
    portcullis_resource::httpsig::check_content_digest(value, body).map_err(|e| format!("the stored body: {e}"))
}

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// Lowercase hex (how the store keeps it).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A position in the chain: an entry's `seq` and hash (the head), or the anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainPoint {
    pub seq: i64,
    pub hash: ChainHash,
}

impl ChainPoint {
    /// Where an empty, never purged log starts.
    pub const GENESIS: ChainPoint = ChainPoint {
        seq: 0,
        hash: ChainHash([0; 32]),
    };
}

/// A stored entry: evidence linked into the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    pub evidence: Evidence,
}

impl AuditRecord {
    /// Links `evidence` after `head`.
    pub fn link(head: ChainPoint, evidence: Evidence) -> Self {
        let seq = head.seq + 1;
        let hash = entry_hash(seq, &head.hash, &evidence);
        Self {
            seq,
            prev_hash: head.hash,
            hash,
            evidence,
        }
    }

    /// This entry as the head of the chain.
    pub fn point(&self) -> ChainPoint {
        ChainPoint {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// Links `evidence` one after the other from `head`; returns the records and the new head.
pub fn link_all(mut head: ChainPoint, evidence: impl IntoIterator<Item = Evidence>) -> (Vec<AuditRecord>, ChainPoint) {
    let records: Vec<AuditRecord> = evidence
        .into_iter()
        .map(|e| {
            let r = AuditRecord::link(head, e);
            head = r.point();
            r
        })
        .collect();
    (records, head)
}

/// The first broken link found by [`ChainVerifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The entry at which the chain breaks.
    pub seq: i64,
    pub cause: BreakCause,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakCause {
    /// Entries `from..=to` are missing: removed.
    Removed { from: i64, to: i64 },
    /// The entry does not follow the previous one (its `prev_hash` or its place is wrong):
    /// entries were reordered (or removed and renumbered).
    Reordered { after: i64 },
    /// The entry's content does not match its hash: modified.
    Modified,
    /// The chain is intact here but the signature does not verify with the stored key.
    Signature(String),
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq;
        match &self.cause {
            BreakCause::Removed { from, to } if from == to => {
                write!(f, "seq {seq}: entry {from} before it is missing (removed)")
            }
            BreakCause::Removed { from, to } => {
                write!(f, "seq {seq}: entries {from} to {to} before it are missing (removed)")
            }
            BreakCause::Reordered { after } => write!(
                f,
                "seq {seq}: does not follow entry {after} (prev_hash mismatch: entries reordered or removed)"
            ),
            BreakCause::Modified => write!(f, "seq {seq}: content does not match its hash (modified)"),
            BreakCause::Signature(e) => write!(f, "seq {seq}: signature invalid ({e})"),
        }
    }
}

/// Checks entries in `seq` order from the anchor: each must follow the previous one, match its
/// hash, and carry a signature that verifies with its stored key.
pub struct ChainVerifier {
    previous: ChainPoint,
    checked: u64,
}

impl ChainVerifier {
    pub fn new(anchor: ChainPoint) -> Self {
        Self {
            previous: anchor,
            checked: 0,
        }
    }

    /// Checks the next entry; the first error is the first broken link.
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let broken = |cause| ChainBreak { seq: record.seq, cause };
        let expected = self.previous.seq + 1;
        if record.seq > expected {
            return Err(broken(BreakCause::Removed {
                from: expected,
                to: record.seq - 1,
            }));
        }
        if record.seq < expected || record.prev_hash != self.previous.hash {
            return Err(broken(BreakCause::Reordered {
                after: self.previous.seq,
            }));
        }
        if entry_hash(record.seq, &record.prev_hash, &record.evidence) != record.hash {
            return Err(broken(BreakCause::Modified));
        }
        // the chain holds here whatever the signature says: the next entry is checked against
        // this one (a bad signature is reported, and checking goes on)
        self.previous = record.point();
        self.checked += 1;
        record.evidence.verify().map_err(|e| broken(BreakCause::Signature(e)))
    }

    /// How many entries were checked.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// The last entry checked (the anchor if none).
    pub fn head(&self) -> ChainPoint {
        self.previous
    }
}

/// The entry hash, version 1 of the encoding in the module documentation.
pub fn entry_hash(seq: i64, prev_hash: &ChainHash, e: &Evidence) -> ChainHash {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"portcullis-audit-v1\0");
    ctx.update(&(seq as u64).to_be_bytes());
    ctx.update(&prev_hash.0);
    field_into(&mut ctx, e.kind.as_str().as_bytes());
    field_into(&mut ctx, e.direction.as_str().as_bytes());
    field_into(&mut ctx, e.interaction_id.as_bytes());
    field_into(&mut ctx, e.client_id.as_bytes());
    ctx.update(&e.at.to_be_bytes());
    field_into(&mut ctx, e.alg.as_bytes());
    field_into(&mut ctx, e.key.as_bytes());
    match &e.proof {
        Proof::Jws { compact } => {
            ctx.update(&[1]);
            field_into(&mut ctx, compact.as_bytes());
        }
        Proof::HttpSignature { base, signature, body } => {
            ctx.update(&[2]);
            field_into(&mut ctx, base.as_bytes());
            field_into(&mut ctx, signature);
            match body {
                None => ctx.update(&[0]),
                Some(b) => {
                    ctx.update(&[1]);
                    field_into(&mut ctx, b);
                }
            }
        }
    }
    let digest = ctx.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    ChainHash(out)
}

fn field_into(ctx: &mut aws_lc_rs::digest::Context, bytes: &[u8]) {
    ctx.update(&(bytes.len() as u64).to_be_bytes());
    ctx.update(bytes);
}

#[cfg(test)]
mod tests {
    use portcullis_jose::SigningKey;

    use super::*;

    fn signed(key: &SigningKey, n: i64) -> Evidence {
        let jwt = key
            .sign_jwt(key.algorithm(), None, &serde_json::json!({ "n": n }))
            .unwrap();
        Evidence::jws(
            EvidenceKind::RequestObject,
            Direction::Received,
            "i-1",
            "c1",
            1000 + n,
            key.public_jwk(),
            &jwt,
        )
    }

    fn chain(n: i64) -> Vec<AuditRecord> {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        link_all(ChainPoint::GENESIS, (1..=n).map(|i| signed(&key, i))).0
    }

    fn verify(anchor: ChainPoint, records: &[AuditRecord]) -> Result<u64, ChainBreak> {
        let mut v = ChainVerifier::new(anchor);
        for r in records {
            v.check(r)?;
        }
        Ok(v.checked())
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(4);
        assert_eq!(records[0].seq, 1);
        assert_eq!(records[0].prev_hash, ChainHash::default());
        assert_eq!(records[2].prev_hash, records[1].hash);
        assert_eq!(verify(ChainPoint::GENESIS, &records), Ok(4));
        // from an anchor (after a purge)
        assert_eq!(verify(records[1].point(), &records[2..]), Ok(2));
    }

    #[test]
    fn a_modified_entry_is_found() {
        let mut records = chain(4);
        records[2].evidence.client_id = "someone-else".into();
        let e = verify(ChainPoint::GENESIS, &records).unwrap_err();
        assert_eq!((e.seq, &e.cause), (3, &BreakCause::Modified));
        assert!(e.to_string().contains("modified"), "{e}");
    }

    #[test]
    fn removed_entries_are_found() {
        let mut records = chain(4);
        records.remove(2);
        let e = verify(ChainPoint::GENESIS, &records).unwrap_err();
        assert_eq!((e.seq, &e.cause), (4, &BreakCause::Removed { from: 3, to: 3 }));
        // the first one
        let records = chain(3);
        let e = verify(ChainPoint::GENESIS, &records[1..]).unwrap_err();
        assert_eq!((e.seq, &e.cause), (2, &BreakCause::Removed { from: 1, to: 1 }));
    }

    #[test]
    fn reordered_entries_are_found() {
        let mut records = chain(4);
        // swapped places, each renumbered to the other's seq
        records.swap(1, 2);
        records[1].seq = 2;
        records[2].seq = 3;
        let e = verify(ChainPoint::GENESIS, &records).unwrap_err();
        assert_eq!((e.seq, &e.cause), (2, &BreakCause::Reordered { after: 1 }));
    }

    #[test]
    fn a_bad_signature_is_found() {
        let mut records = chain(2);
        let other = SigningKey::generate(Algorithm::Es256).unwrap();
        records[1].evidence.key = other.public_jwk().to_json().to_string();
        // rechained, so that only the signature is wrong
        let evidence: Vec<Evidence> = records.into_iter().map(|r| r.evidence).collect();
        let (records, _) = link_all(ChainPoint::GENESIS, evidence);
        let e = verify(ChainPoint::GENESIS, &records).unwrap_err();
        assert_eq!(e.seq, 2);
        assert!(matches!(e.cause, BreakCause::Signature(_)), "{e}");
    }

    /// Any Content-Digest the resource accepted re-verifies: sha-256, sha-512 alone, and
    /// members with parameters (the review's M1: a digest the server took must never break
    /// `audit verify`).
    #[test]
    fn http_signatures_verify_with_their_body() {
        use base64::Engine as _;
        let body = b"{\"hello\":\"world\"}".to_vec();
        let sha512 = base64::engine::general_purpose::STANDARD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, &body).as_ref());
        for digest in [
            portcullis_resource::httpsig::content_digest(&body),
            format!("sha-512=:{sha512}:"),
            format!("{};p=1", portcullis_resource::httpsig::content_digest(&body)),
        ] {
            portcullis_resource::httpsig::check_content_digest(&digest, &body).unwrap();
            http_signature_round_trip(&digest, body.clone());
        }
    }

    fn http_signature_round_trip(digest: &str, body: Vec<u8>) {
        let key = SigningKey::generate(Algorithm::Ed25519).unwrap();
        let base = format!(
            "\"@method\": POST\n\"content-digest\": {digest}\n\"@signature-params\": (\"@method\" \"content-digest\");created=1"
        );
        let signature = key.sign_raw(base.as_bytes()).unwrap();
        let mut e = Evidence {
            kind: EvidenceKind::ResourceRequest,
            direction: Direction::Received,
            interaction_id: "i".into(),
            client_id: "c".into(),
            at: 1,
            alg: "Ed25519".into(),
            key: key.public_jwk().to_json().to_string(),
            proof: Proof::HttpSignature {
                base,
                signature,
                body: Some(body),
            },
        };
        assert_eq!(e.verify(), Ok(()));
        if let Proof::HttpSignature { body, .. } = &mut e.proof {
            *body = Some(b"{}".to_vec());
        }
        assert!(e.verify().unwrap_err().contains("the stored body"));
    }

    #[test]
    fn hashes_round_trip_as_hex() {
        let h = entry_hash(1, &ChainHash::default(), &chain(1)[0].evidence);
        assert_eq!(ChainHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ChainHash::from_hex("zz"), None);
    }
}

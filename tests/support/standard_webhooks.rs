//! A Standard Webhooks verifier written from the specification, the way the
//! reference libraries verify: required headers, a timestamp tolerance of
//! five minutes, HMAC-SHA256 over `{id}.{timestamp}.{body}` with the
//! base64-decoded `whsec_` secret, and a constant-time comparison against
//! each space-separated `v1,` signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fakes::Call;

const TOLERANCE_SECONDS: i64 = 5 * 60;

#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    MissingHeader(&'static str),
    BadSecret,
    BadTimestamp,
    TimestampOutOfTolerance,
    NoMatchingSignature,
}

/// Verify a delivery. `now` is Unix seconds.
pub fn verify(
    secret: &str,
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let id = id.ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let timestamp = timestamp.ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signatures = signatures.ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now - ts).abs() > TOLERANCE_SECONDS {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).map_err(|_| VerifyError::BadSecret)?;
    for candidate in signatures.split(' ') {
        let Some(("v1", sig)) = candidate.split_once(',') else { continue };
        let Ok(sig) = STANDARD.decode(sig) else { continue };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| VerifyError::BadSecret)?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(VerifyError::NoMatchingSignature)
}

/// Verify a request a receiver recorded, now.
pub fn verify_call(secret: &str, call: &Call) -> Result<(), VerifyError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    verify(
        secret,
        call.header("webhook-id"),
        call.header("webhook-timestamp"),
        call.header("webhook-signature"),
        &call.body,
        now,
    )
}

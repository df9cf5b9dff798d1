//! API keys: `em_live_{key id}_{secret}`, stored as scrypt hashes with a
//! per-key salt.

use rand::RngCore;

use super::caller::Scope;
use crate::store::KeyRecord;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "em_live_";
/// scrypt cost: N = 2^14, r = 8, p = 1 (16 MiB, the interactive-login
/// recommendation), 32-byte output.
const SCRYPT_LOG_N: u8 = 14;

/// A freshly generated key: the full key (shown once) and its record.
pub struct NewKey {
    pub api_key: String,
    pub record: KeyRecord,
}

/// Generates a key for `customer_id`; only its salt and hash are kept.
pub fn generate_key(
    customer_id: &str,
    scopes: &[Scope],
    project: Option<String>,
    expires_at: Option<i64>,
    now: i64,
) -> NewKey {
    let mut rng = rand::rng();
    let mut id = [0u8; 8];
    let mut secret = [0u8; 24];
    let mut salt = [0u8; 16];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    rng.fill_bytes(&mut salt);
    let key_id = hex::encode(id);
    let secret = hex::encode(secret);
    let api_key = format!("{KEY_PREFIX}{key_id}_{secret}");
    let hash = scrypt_hash(secret.as_bytes(), &salt);
    NewKey {
        api_key,
        record: KeyRecord {
            key_id,
            customer_id: customer_id.to_owned(),
            salt: salt.to_vec(),
            hash,
            scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            project,
            expires_at,
            created_at: now,
            revoked_at: None,
        },
    }
}

pub(super) fn scrypt_hash(secret: &[u8], salt: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    // The parameters are constants within scrypt's bounds, and the output
    // length is valid: neither call can fail.
    if let Ok(params) = scrypt::Params::new(SCRYPT_LOG_N, 8, 1, 32) {
        let _ = scrypt::scrypt(secret, salt, &params, &mut out);
    }
    out
}

/// Splits `em_live_{key id}_{secret}`.
pub fn parse_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id, 16) && hexish(secret, 48)).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_documented_shape_and_verify_only_with_their_secret() {
        let key = generate_key("cus_1", &[Scope::Read], None, None, 0);
        let (id, secret) = parse_key(&key.api_key).expect("a well-formed key");
        assert_eq!(id, key.record.key_id);
        assert!(key.api_key.starts_with("em_live_"));
        assert_eq!(
            scrypt_hash(secret.as_bytes(), &key.record.salt),
            key.record.hash
        );
        let mut wrong = secret.to_owned().into_bytes();
        wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
        assert_ne!(scrypt_hash(&wrong, &key.record.salt), key.record.hash);
        // Two keys never share a salt, so equal secrets would not share a hash.
        let other = generate_key("cus_1", &[Scope::Read], None, None, 0);
        assert_ne!(other.record.salt, key.record.salt);
        assert!(parse_key("em_live_zz_yy").is_none());
        assert!(parse_key("sk-abc").is_none());
    }
}

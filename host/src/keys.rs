//! API keys: minting, the Meshes key grammar, and the SHA-256 by which keys
//! are stored and looked up. A key's text exists once, in the answer that
//! mints it; the store keeps its hash and a hint.

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::model::{ApiKey, KeyKind, new_id, now_ms};

/// Mint a key; returns the record and the key text (shown once).
pub fn mint(workspace: &str, kind: KeyKind) -> (ApiKey, String) {
    let id = new_id("key-");
    let text = match kind {
        KeyKind::Publishable => format!("mesh_pub_{workspace}_{id}_{}", random_token()),
        KeyKind::Secret => format!("mesh_sec_{}", random_token()),
    };
    let hint = format!("{}…{}", &text[..9], &text[text.len() - 4..]);
    let key = ApiKey {
        id,
        workspace: workspace.to_string(),
        kind,
        hash: hash_key(&text),
        hint,
        created_at: now_ms(),
        revoked_at: None,
    };
    (key, text)
}

/// 24 random bytes as URL-safe text without `_` (the grammar's separator).
fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).replace(['_', '-'], "x")
}

pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `^mesh_pub_([A-Za-z0-9\-.]+)_([A-Za-z0-9\-.]+)_([^_]+)$`, without a regex engine.
pub fn is_publishable_format(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("mesh_pub_") else { return false };
    let parts: Vec<&str> = rest.split('_').collect();
    let ident = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    parts.len() == 3 && ident(parts[0]) && ident(parts[1]) && !parts[2].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishable_keys_follow_the_meshes_grammar() {
        assert!(is_publishable_format("mesh_pub_ws-01J.x_key-01J_Zx9q"));
        assert!(!is_publishable_format("mesh_pub_ws_01J_key_x"), "underscores split groups");
        assert!(!is_publishable_format("mesh_pub_ws-1_key-1_"));
        assert!(!is_publishable_format("mesh_sec_abc"));
    }

    #[test]
    fn minted_keys_parse_and_hash_to_their_record() {
        let (key, text) = mint("ws-1", KeyKind::Publishable);
        assert!(is_publishable_format(&text), "{text}");
        assert_eq!(key.hash, hash_key(&text));
        assert!(!key.hint.contains(&text[9..text.len() - 4]), "the hint hides the key");
    }
}

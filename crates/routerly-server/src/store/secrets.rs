//! The master key and secrets at rest.
//!
//! A secret in a config file is stored as `enc:v1:<base64(nonce || ciphertext)>`
//! (AES-256-GCM under the master key, random 96-bit nonce), or written by hand as a reference
//! `env:NAME` read from the environment. Nothing here logs or displays a secret.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Prefix of a value encrypted under the master key.
pub const ENCRYPTED_PREFIX: &str = "enc:v1:";
/// Prefix of a reference to an environment variable.
pub const ENV_PREFIX: &str = "env:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a secret could not be decrypted or resolved; never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The value is not `enc:v1:…`.
    #[error("not an encrypted value (expected `enc:v1:…`)")]
    NotEncrypted,
    /// An `enc:` value of another version, which this build cannot read.
    #[error("unsupported encrypted value (only `enc:v1:` is known)")]
    UnsupportedVersion,
    /// The `enc:v1:` payload is not base64 of a nonce and a ciphertext.
    #[error("malformed encrypted value")]
    Malformed,
    /// Authentication failed: another master key, or the value was altered.
    #[error("cannot decrypt: encrypted under another master key, or altered")]
    Decrypt,
    /// The decrypted bytes are not UTF-8.
    #[error("decrypted value is not UTF-8")]
    NotUtf8,
    /// An `env:NAME` reference whose variable is unset or not UTF-8.
    #[error("environment variable `{0}` is not set (or not valid UTF-8)")]
    MissingEnv(String),
    /// An `env:` reference without a valid variable name.
    #[error("`env:` reference needs a variable name")]
    BadEnvName,
    /// An `env:` reference to a variable that the `env_allow_list` setting does not name,
    /// or to a `ROUTERLY_*` variable, which is never readable this way.
    #[error(
        "environment variable `{0}` may not be referenced: names must match the env_allow_list setting, and ROUTERLY_* never does"
    )]
    EnvNotAllowed(String),
    /// A master key that is not 64 hexadecimal characters.
    #[error("a master key is 64 hexadecimal characters (32 bytes)")]
    BadKey,
}

/// The 32-byte master key that encrypts secrets at rest and derives signing keys.
///
/// Its `Debug` prints nothing secret and its bytes are overwritten when it is dropped.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.fill(0);
        // Keeps the compiler from treating the wipe as a dead store.
        std::hint::black_box(&mut self.bytes);
    }
}

impl MasterKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        MasterKey { bytes }
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey { bytes }
    }

    /// Parses 64 hexadecimal characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(SecretError::BadKey);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| SecretError::BadKey)?;
        Ok(MasterKey { bytes })
    }

    /// The key as 64 hex characters, only for writing `config/secret`.
    pub(crate) fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.bytes).expect("an AES-256 key is 32 bytes")
    }

    /// Encrypts `plaintext` as `enc:v1:<base64(nonce || ciphertext)>` with a fresh nonce.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(&nonce.into(), plaintext.as_bytes())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut payload = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ciphertext);
        format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(payload))
    }

    /// Decrypts a value made by [`MasterKey::encrypt`].
    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        let Some(encoded) = stored.strip_prefix(ENCRYPTED_PREFIX) else {
            return Err(if stored.starts_with("enc:") {
                SecretError::UnsupportedVersion
            } else {
                SecretError::NotEncrypted
            });
        };
        let payload = STANDARD
            .decode(encoded.trim())
            .map_err(|_| SecretError::Malformed)?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Malformed);
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
        let plaintext = self
            .cipher()
            .decrypt(&nonce.into(), ciphertext)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plaintext).map_err(|_| SecretError::NotUtf8)
    }

    /// The usable value of a stored secret: `enc:v1:…` is decrypted, `env:NAME` is read from
    /// the environment, and anything else is a value written in clear by hand (see
    /// [`is_plaintext`]).
    /// An `env:` reference is read only when `allowed` permits its name.
    pub fn resolve(&self, stored: &str, allowed: &EnvAllowList) -> Result<String, SecretError> {
        self.resolve_with(stored, allowed, |name| std::env::var(name).ok())
    }

    /// [`MasterKey::resolve`] with the environment given by `env`.
    pub fn resolve_with(
        &self,
        stored: &str,
        allowed: &EnvAllowList,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<String, SecretError> {
        if let Some(name) = env_reference(stored) {
            allowed.check(name)?;
            return env(name).ok_or_else(|| SecretError::MissingEnv(name.to_owned()));
        }
        if stored.starts_with("enc:") {
            return self.decrypt(stored);
        }
        Ok(stored.to_owned())
    }

    /// The form in which a secret given through the API is stored: `env:` references and
    /// already encrypted values are kept as they are, anything else is encrypted.
    pub fn seal(&self, input: &str) -> String {
        if input.starts_with(ENV_PREFIX) || input.starts_with(ENCRYPTED_PREFIX) {
            input.to_owned()
        } else {
            self.encrypt(input)
        }
    }

    /// A 32-byte key for one `purpose` (such as `"jwt"`): HMAC-SHA256 of the purpose under the
    /// master key, so each use has its own key and none reveals the master key.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .expect("HMAC accepts a key of any length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The variable name of an `env:NAME` reference, or `None` when `stored` is not one.
pub fn env_reference(stored: &str) -> Option<&str> {
    stored.strip_prefix(ENV_PREFIX).map(str::trim)
}

/// The environment variables that `env:` references may name: the `env_allow_list` setting,
/// patterns where `*` stands for any run of characters (default `*_API_KEY`). Variables
/// starting with `ROUTERLY_` (the master key, the admin password) are never allowed, whatever
/// the patterns say.
#[derive(Debug, Clone, Copy)]
pub struct EnvAllowList<'a> {
    patterns: &'a [String],
}

/// The default of the `env_allow_list` setting.
pub const DEFAULT_ENV_ALLOW_LIST: &str = "*_API_KEY";

/// Prefix of the service's own variables, never readable through `env:`.
pub const RESERVED_ENV_PREFIX: &str = "ROUTERLY_";

impl<'a> EnvAllowList<'a> {
    /// The list of `patterns`.
    pub fn new(patterns: &'a [String]) -> Self {
        EnvAllowList { patterns }
    }

    /// Whether a reference to `name` may be resolved.
    pub fn check(&self, name: &str) -> Result<(), SecretError> {
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(SecretError::BadEnvName);
        }
        let reserved = name.to_ascii_uppercase().starts_with(RESERVED_ENV_PREFIX);
        if reserved
            || !self
                .patterns
                .iter()
                .any(|pattern| glob_matches(pattern, name))
        {
            return Err(SecretError::EnvNotAllowed(name.to_owned()));
        }
        Ok(())
    }
}

/// Checks one `env_allow_list` pattern: letters, digits, `_` and `*`, and not `*` alone
/// (which would open every variable).
pub fn check_env_pattern(pattern: &str) -> Result<(), String> {
    let valid = !pattern.is_empty()
        && pattern.len() <= 128
        && pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*');
    if !valid {
        return Err(format!(
            "`{pattern}` is not a pattern: use letters, digits, _ and * (such as *_API_KEY)"
        ));
    }
    if pattern.chars().all(|c| c == '*') {
        return Err(format!(
            "`{pattern}` would allow every environment variable; name a suffix or prefix such as *_API_KEY"
        ));
    }
    Ok(())
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (case-sensitive).
fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name must match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether a stored secret is written in clear (neither `enc:` nor `env:`).
pub fn is_plaintext(stored: &str) -> bool {
    !stored.starts_with("enc:") && !stored.starts_with(ENV_PREFIX)
}

/// A secret shortened for display, such as `sk-…abcd`: its first three and last four
/// characters, or only `…` when it is too short to show any of it safely.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_then_decrypt_round_trips_with_fresh_nonces() {
        let key = MasterKey::generate();
        let first = key.encrypt("sk-secret-value");
        let second = key.encrypt("sk-secret-value");
        assert!(first.starts_with("enc:v1:"), "{first}");
        assert_ne!(first, second, "each encryption must use a new nonce");
        assert!(
            !first.contains("sk-secret"),
            "ciphertext must not contain the plaintext"
        );
        assert_eq!(key.decrypt(&first).expect("decrypts"), "sk-secret-value");
        assert_eq!(
            key.resolve(&second, &EnvAllowList::new(&[]))
                .expect("resolves"),
            "sk-secret-value"
        );
        assert_eq!(key.decrypt(&key.encrypt("")).expect("empty"), "");
    }

    #[test]
    fn another_key_or_an_altered_value_fails() {
        let key = MasterKey::generate();
        let stored = key.encrypt("sk-secret-value");
        assert_eq!(
            MasterKey::generate().decrypt(&stored),
            Err(SecretError::Decrypt)
        );
        let mut payload = STANDARD
            .decode(&stored[ENCRYPTED_PREFIX.len()..])
            .expect("base64");
        let last = payload.len() - 1;
        payload[last] ^= 1;
        let altered = format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(payload));
        assert_eq!(key.decrypt(&altered), Err(SecretError::Decrypt));
        assert_eq!(key.decrypt("enc:v1:!!"), Err(SecretError::Malformed));
        assert_eq!(key.decrypt("enc:v1:AAAA"), Err(SecretError::Malformed));
        assert_eq!(
            key.decrypt("enc:v2:AAAA"),
            Err(SecretError::UnsupportedVersion)
        );
        assert_eq!(key.decrypt("sk-plain"), Err(SecretError::NotEncrypted));
    }

    #[test]
    fn env_references_read_the_environment_and_name_a_missing_variable() {
        let key = MasterKey::generate();
        let env = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-from-env".to_owned());
        let patterns = vec![DEFAULT_ENV_ALLOW_LIST.to_owned()];
        let allowed = EnvAllowList::new(&patterns);
        assert_eq!(
            key.resolve_with("env:OPENAI_API_KEY", &allowed, env)
                .expect("set"),
            "sk-from-env"
        );
        let error = key
            .resolve_with("env:ANTHROPIC_API_KEY", &allowed, env)
            .expect_err("unset variable");
        assert_eq!(
            error,
            SecretError::MissingEnv("ANTHROPIC_API_KEY".to_owned())
        );
        assert!(error.to_string().contains("ANTHROPIC_API_KEY"));
        assert_eq!(
            key.resolve_with("env:", &allowed, env),
            Err(SecretError::BadEnvName)
        );
        assert_eq!(
            key.resolve_with("sk-clear", &allowed, env).expect("clear"),
            "sk-clear"
        );
    }

    #[test]
    fn env_references_are_limited_to_the_allow_list_and_never_routerly() {
        let key = MasterKey::generate();
        let env = |_: &str| Some("value".to_owned());
        let patterns: Vec<String> = ["*_API_KEY", "SMTP_PASS*", "EXACT", "A*B*C"]
            .map(str::to_owned)
            .to_vec();
        let allowed = EnvAllowList::new(&patterns);
        for name in [
            "OPENAI_API_KEY",
            "X_API_KEY",
            "SMTP_PASSWORD",
            "EXACT",
            "ABC",
            "AxxBxxC",
        ] {
            assert_eq!(
                key.resolve_with(&format!("env:{name}"), &allowed, env),
                Ok("value".to_owned()),
                "{name} is allowed"
            );
        }
        for name in [
            "ROUTERLY_SECRET_KEY",
            "ROUTERLY_ADMIN_PASSWORD",
            "ROUTERLY_X_API_KEY",
            "routerly_x_API_KEY",
            "HOME",
            "PATH",
            "EXACTLY",
            "_API_KEYS",
            "ACB",
            "API_KEY",
        ] {
            assert_eq!(
                key.resolve_with(&format!("env:{name}"), &allowed, env),
                Err(SecretError::EnvNotAllowed(name.to_owned())),
                "{name} must be refused"
            );
        }
        for name in ["A=B", "A B", "A\0"] {
            assert_eq!(
                key.resolve_with(&format!("env:{name}"), &allowed, env),
                Err(SecretError::BadEnvName),
                "{name:?}"
            );
        }
        assert!(check_env_pattern("*_API_KEY").is_ok());
        for bad in ["*", "**", "", "A-B", "A.*"] {
            assert!(check_env_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn seal_keeps_references_and_encrypts_the_rest() {
        let key = MasterKey::generate();
        assert_eq!(key.seal("env:KEY"), "env:KEY");
        let sealed = key.seal("sk-abc");
        assert_eq!(key.seal(&sealed), sealed);
        assert_eq!(key.decrypt(&sealed).expect("sealed"), "sk-abc");
    }

    #[test]
    fn master_key_hex_and_debug_and_derive() {
        let hex_text = "00".repeat(31) + "ff";
        let key = MasterKey::from_hex(&format!(" {hex_text}\n")).expect("valid hex");
        assert_eq!(key.to_hex(), hex_text);
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert_eq!(MasterKey::from_hex("abc").err(), Some(SecretError::BadKey));
        assert_eq!(
            MasterKey::from_hex(&"zz".repeat(32)).err(),
            Some(SecretError::BadKey)
        );
        assert_eq!(key.derive("jwt"), key.derive("jwt"));
        assert_ne!(key.derive("jwt"), key.derive("csrf"));
        assert_ne!(key.derive("jwt"), MasterKey::generate().derive("jwt"));
    }

    #[test]
    fn mask_shows_only_the_ends() {
        assert_eq!(mask("sk-proj-1234567890abcd"), "sk-…abcd");
        assert_eq!(mask("short"), "…");
    }
}

//! `auth.ntlm`: the user name and password (read from Secrets on every call, so a rotated
//! password is used at once) and the NTLM messages built from them. The messages come from the
//! `ntlmclient` crate (NTLMv2); the handshake that carries them is [`crate::handshake`].
//!
//! The user name is read as newer go-ntlmssp reads it: `DOMAIN\user` authenticates `user` in
//! `DOMAIN` (the version upstream pins uses the CHALLENGE's domain instead, see
//! docs/providers/webhook.md); `user@realm` (a UPN) is sent whole with no domain; a plain
//! `user` is authenticated in the domain the server names in its CHALLENGE.

use strongroom_core::crd::external_secrets::{SecretKeySelector, WebhookNtlm};
use strongroom_provider_api::{CredentialResolver, ProviderError};

use crate::template::check_type_label;

/// The NTLM credentials of one call. Its `Debug` shows neither the user name nor the password.
#[derive(Clone)]
pub struct NtlmCredentials {
    username: String,
    password: String,
    /// Who uses them, for messages (e.g. `SecretStore default/hook`).
    owner: String,
}

impl std::fmt::Debug for NtlmCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmCredentials")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// What the NTLM messages need of a user name: the user, the domain written before a `\`, and
/// whether the server's domain is to be used when none is written (not for a UPN).
#[derive(Debug, PartialEq, Eq)]
struct Identity<'a> {
    user: &'a str,
    domain: Option<&'a str>,
    server_domain: bool,
}

fn identity(username: &str) -> Identity<'_> {
    if let Some((domain, user)) = username.split_once('\\') {
        Identity {
            user,
            domain: Some(domain),
            server_domain: false,
        }
    } else {
        Identity {
            user: username,
            domain: None,
            server_domain: !username.contains('@'),
        }
    }
}

/// The two Secret selectors of `auth.ntlm`, with their field names.
pub(crate) fn selectors(ntlm: &WebhookNtlm) -> [(&'static str, Option<&SecretKeySelector>); 2] {
    [
        ("usernameSecret", ntlm.username_secret.as_ref()),
        ("passwordSecret", ntlm.password_secret.as_ref()),
    ]
}

fn invalid(msg: String) -> ProviderError {
    ProviderError::InvalidConfig(msg)
}

impl NtlmCredentials {
    /// Credentials given directly (tests, and callers that read them elsewhere).
    pub fn new(username: &str, password: &str, owner: &str) -> Self {
        Self {
            username: username.to_string(),
            password: password.to_string(),
            owner: owner.to_string(),
        }
    }

    /// Reads `usernameSecret` and `passwordSecret` of `spec` through `creds`, each Secret in the
    /// namespace `namespace_of` gives for its selector. As the `secrets[]` Secrets, each must
    /// carry the label [`crate::template::TYPE_LABEL`]. `owner` names the store or generator in messages.
    pub async fn read(
        creds: &dyn CredentialResolver,
        spec: &WebhookNtlm,
        namespace_of: impl Fn(&SecretKeySelector) -> Result<String, ProviderError>,
        owner: &str,
    ) -> Result<Self, ProviderError> {
        let username = read_key(
            creds,
            "auth.ntlm.usernameSecret",
            spec.username_secret.as_ref(),
            &namespace_of,
        )
        .await?;
        let password = read_key(
            creds,
            "auth.ntlm.passwordSecret",
            spec.password_secret.as_ref(),
            &namespace_of,
        )
        .await?;
        Ok(Self {
            username,
            password,
            owner: owner.to_string(),
        })
    }

    /// Who uses these credentials (for messages).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The `Basic` credentials upstream's client sends to a server that offers neither NTLM nor
    /// Negotiate (`user:password`, base64).
    pub fn basic(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password))
    }

    /// The NEGOTIATE message (the handshake's first).
    pub fn negotiate_message(&self) -> Result<Vec<u8>, ProviderError> {
        ntlmclient::Message::Negotiate(ntlmclient::NegotiateMessage {
            flags: client_flags(),
            supplied_domain: String::new(),
            supplied_workstation: String::new(),
            os_version: CLIENT_VERSION,
        })
        .to_bytes()
        .map_err(|e| invalid(format!("cannot write the NTLM NEGOTIATE message: {e}")))
    }

    /// The AUTHENTICATE message answering the server's CHALLENGE `challenge` (NTLMv2). A
    /// challenge that cannot be read is a [`ProviderError::Malformed`] answer.
    pub fn authenticate_message(&self, challenge: &[u8]) -> Result<Vec<u8>, ProviderError> {
        let challenge = match ntlmclient::Message::try_from(challenge) {
            Ok(ntlmclient::Message::Challenge(c)) => c,
            Ok(_) => {
                return Err(ProviderError::Malformed(
                    "the endpoint's NTLM token is not a CHALLENGE message".into(),
                ));
            }
            Err(e) => {
                return Err(ProviderError::Malformed(format!(
                    "the endpoint's NTLM CHALLENGE cannot be read: {e}"
                )));
            }
        };
        if !challenge
            .flags
            .contains(ntlmclient::Flags::NEGOTIATE_UNICODE)
        {
            return Err(ProviderError::Malformed(
                "the endpoint's NTLM CHALLENGE does not offer Unicode (only Unicode is supported)"
                    .into(),
            ));
        }
        let who = identity(&self.username);
        let domain = match who.domain {
            Some(d) => d.to_string(),
            None if who.server_domain => challenge.target_name.clone(),
            None => String::new(),
        };
        let creds = ntlmclient::Credentials {
            username: who.user.to_string(),
            password: self.password.clone(),
            domain,
        };
        let target_info: Vec<u8> = challenge
            .target_information
            .iter()
            .flat_map(ntlmclient::TargetInfoEntry::to_bytes)
            .collect();
        // The server's time when it sent one, as go-ntlmssp.
        let time = challenge
            .target_information
            .iter()
            .find(|e| e.entry_type == ntlmclient::TargetInfoType::Timestamp)
            .and_then(|e| <[u8; 8]>::try_from(e.data.as_slice()).ok())
            .map(i64::from_le_bytes)
            .unwrap_or_else(ntlmclient::get_ntlm_time);
        let response =
            ntlmclient::respond_challenge_ntlm_v2(challenge.challenge, &target_info, time, &creds);
        // With target information the LMv2 response is zeros (MS-NLMP 3.1.5.1.2).
        let lm_response = if challenge.target_information.is_empty() {
            response.lm_response
        } else {
            vec![0; 24]
        };
        ntlmclient::Message::Authenticate(ntlmclient::AuthenticateMessage {
            lm_response,
            ntlm_response: response.ntlm_response,
            domain_name: creds.domain,
            user_name: creds.username,
            workstation_name: String::new(),
            // No key exchange is negotiated: no encrypted session key is sent.
            session_key: Vec::new(),
            flags: (client_flags() & challenge.flags) | ntlmclient::Flags::NEGOTIATE_UNICODE,
            os_version: ntlmclient::OsVersion::default(),
        })
        .to_bytes()
        .map_err(|e| invalid(format!("cannot write the NTLM AUTHENTICATE message: {e}")))
    }
}

/// The flags the client asks for, as go-ntlmssp (upstream's client): Unicode, target
/// information, extended session security, 128- and 56-bit keys.
fn client_flags() -> ntlmclient::Flags {
    use ntlmclient::Flags;
    Flags::NEGOTIATE_UNICODE
        | Flags::NEGOTIATE_NTLM2_KEY
        | Flags::NEGOTIATE_TARGET_INFO
        | Flags::NEGOTIATE_128BIT
        | Flags::NEGOTIATE_56BIT
}

/// The version go-ntlmssp writes into its NEGOTIATE message (Windows 6.1 build 7601, NTLM
/// revision 15).
const CLIENT_VERSION: ntlmclient::OsVersion = ntlmclient::OsVersion {
    major_version: 6,
    minor_version: 1,
    build_number: 7601,
    reserved: [0, 0, 0],
    ntlm_revision: 15,
};

/// The value of the Secret key `selector` names, read as text.
async fn read_key(
    creds: &dyn CredentialResolver,
    field: &str,
    selector: Option<&SecretKeySelector>,
    namespace_of: &impl Fn(&SecretKeySelector) -> Result<String, ProviderError>,
) -> Result<String, ProviderError> {
    let selector = selector.ok_or_else(|| invalid(format!("{field} is required")))?;
    let name = selector.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(format!("{field}.name must not be empty")));
    }
    let key = selector.key.as_deref().unwrap_or_default();
    if key.is_empty() {
        return Err(invalid(format!("{field}.key must not be empty")));
    }
    let namespace = namespace_of(selector)?;
    let secret = creds.labelled_secret(&namespace, name).await?;
    check_type_label(&secret.labels, name).map_err(|e| invalid(format!("{field}: {e}")))?;
    let value = secret.data.get(key).ok_or_else(|| {
        ProviderError::Authentication(format!(
            "{field}: secret {namespace}/{name} has no key {key:?}"
        ))
    })?;
    String::from_utf8(value.expose().to_vec())
        .map_err(|_| ProviderError::Authentication(format!("{field}: the value is not UTF-8 text")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn user_names_split_as_go_ntlmssp_splits_them() {
        assert_eq!(
            identity(r"CORP\alice"),
            Identity {
                user: "alice",
                domain: Some("CORP"),
                server_domain: false
            }
        );
        assert_eq!(
            identity("alice@corp.example"),
            Identity {
                user: "alice@corp.example",
                domain: None,
                server_domain: false
            }
        );
        assert_eq!(
            identity("alice"),
            Identity {
                user: "alice",
                domain: None,
                server_domain: true
            }
        );
    }

    #[test]
    fn debug_and_messages_hide_the_credentials() {
        let creds = NtlmCredentials::new(r"CORP\user-canary", "password-canary", "SecretStore a/b");
        let shown = format!("{creds:?}");
        assert!(!shown.contains("canary"), "{shown}");
        // Byte for byte the NEGOTIATE message upstream's own test expects of its client.
        use base64::Engine;
        let negotiate = creds.negotiate_message().unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(negotiate),
            "TlRMTVNTUAABAAAAAQCIoAAAAAAoAAAAAAAAACgAAAAGAbEdAAAADw=="
        );
        let e = creds
            .authenticate_message(b"NTLMSSP\0\x02\0\0\0short")
            .unwrap_err();
        assert_eq!(e.category(), "malformed_answer");
        assert!(!e.to_string().contains("canary"), "{e}");
    }

    /// A CHALLENGE as a server writes one (MS-NLMP 2.2.1.2): target name `SERVER`, target
    /// information (a server name, a timestamp, the terminator).
    fn challenge() -> Vec<u8> {
        let utf16 = |t: &str| -> Vec<u8> { t.encode_utf16().flat_map(u16::to_le_bytes).collect() };
        let name = utf16("SERVER");
        let mut info = Vec::new();
        for (id, data) in [
            (1u16, name.clone()),
            (7, vec![1, 2, 3, 4, 5, 6, 7, 8]),
            (0, vec![]),
        ] {
            info.extend_from_slice(&id.to_le_bytes());
            info.extend_from_slice(&(data.len() as u16).to_le_bytes());
            info.extend_from_slice(&data);
        }
        let secbuf = |len: usize, offset: usize| -> Vec<u8> {
            let mut b = (len as u16).to_le_bytes().repeat(2);
            b.extend_from_slice(&(offset as u32).to_le_bytes());
            b
        };
        let mut m = b"NTLMSSP\0".to_vec();
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice(&secbuf(name.len(), 56));
        let flags = client_flags() | ntlmclient::Flags::REQUEST_TARGET;
        m.extend_from_slice(&flags.bits().to_le_bytes());
        m.extend_from_slice(b"12345678");
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&secbuf(info.len(), 56 + name.len()));
        m.extend_from_slice(&[6, 1, 0xb1, 0x1d, 0, 0, 0, 15]);
        m.extend_from_slice(&name);
        m.extend_from_slice(&info);
        m
    }

    #[test]
    fn an_authenticate_message_answers_a_challenge_and_bad_challenges_are_errors() {
        let creds = NtlmCredentials::new("alice", "pw", "SecretStore a/b");
        let answer = creds.authenticate_message(&challenge()).unwrap();
        let Ok(ntlmclient::Message::Authenticate(m)) =
            ntlmclient::Message::try_from(answer.as_slice())
        else {
            panic!("not an AUTHENTICATE message");
        };
        // A plain user name: the server's domain; no session key; a zero LMv2 response.
        assert_eq!(
            (m.user_name.as_str(), m.domain_name.as_str()),
            ("alice", "SERVER")
        );
        assert!(m.session_key.is_empty());
        assert_eq!(m.lm_response, vec![0; 24]);
        // Truncated or corrupted challenges (a hostile or broken server) give errors, never a
        // panic.
        let good = challenge();
        for len in 0..good.len() {
            let _ = creds.authenticate_message(&good[..len]);
        }
        for i in 12..good.len() {
            for byte in [0x00, 0x7f, 0xff] {
                let mut bad = good.clone();
                bad[i] = byte;
                let _ = creds.authenticate_message(&bad);
            }
        }
    }
}

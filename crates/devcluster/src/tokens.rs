//! ServiceAccount tokens: TokenRequest mints ES256 JWTs shaped like the real API server's,
//! TokenReview checks them, and the OIDC discovery documents publish the signing key.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The issuer and default audience, as in a kubeadm cluster.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const KEY_ID: &str = "devcluster-sa-key";

/// The `kubernetes.io` claim of a ServiceAccount token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KubernetesClaim {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The ServiceAccount.
    pub serviceaccount: NameUid,
}

/// A name and uid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NameUid {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

/// The claims of a ServiceAccount token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:<ns>:<name>`.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id.
    pub jti: String,
    /// Kubernetes-specific claim.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaim,
}

/// Signs and verifies ServiceAccount tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

impl TokenIssuer {
    /// A fresh P-256 signing key.
    pub fn generate() -> anyhow::Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let encoding = EncodingKey::from_ec_der(&key.serialize_der());
        let point = key.public_key_raw();
        let (x, y) = point
            .get(1..33)
            .zip(point.get(33..65))
            .ok_or_else(|| anyhow::anyhow!("unexpected P-256 public key length"))?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (x, y) = (b64.encode(x), b64.encode(y));
        let decoding = DecodingKey::from_ec_components(&x, &y)?;
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "use": "sig", "alg": "ES256", "kid": KEY_ID});
        Ok(Self {
            encoding,
            decoding,
            jwk,
        })
    }

    /// Mints a token for a ServiceAccount.
    pub fn issue(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: Vec<String>,
        expiration_seconds: i64,
    ) -> anyhow::Result<(String, i64)> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: format!("system:serviceaccount:{namespace}:{name}"),
            aud: if audiences.is_empty() {
                vec![ISSUER.to_string()]
            } else {
                audiences
            },
            exp: now + expiration_seconds,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: KubernetesClaim {
                namespace: namespace.to_string(),
                serviceaccount: NameUid {
                    name: name.to_string(),
                    uid: uid.to_string(),
                },
            },
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(KEY_ID.to_string());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok((token, claims.exp))
    }

    /// Verifies signature, expiry and issuer; returns the claims.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.validate_aud = false;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// `/.well-known/openid-configuration`.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": ISSUER,
            "jwks_uri": format!("{ISSUER}/openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        })
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }
}

/// The TokenReview answer for `claims` (already verified), given the review's audiences and
/// whether the ServiceAccount still exists with the token's uid.
pub fn review_status(claims: Option<&Claims>, audiences: &[String], account_valid: bool) -> Value {
    let Some(c) = claims.filter(|_| account_valid) else {
        return json!({"authenticated": false, "error": "invalid bearer token"});
    };
    let wanted: Vec<String> = if audiences.is_empty() {
        vec![ISSUER.to_string()]
    } else {
        audiences.to_vec()
    };
    let matched: Vec<&String> = wanted.iter().filter(|a| c.aud.contains(a)).collect();
    if matched.is_empty() {
        return json!({"authenticated": false, "error": "token audiences do not match"});
    }
    let ns = &c.kubernetes.namespace;
    json!({
        "authenticated": true,
        "user": {
            "username": c.sub,
            "uid": c.kubernetes.serviceaccount.uid,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{ns}"), "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": [format!("JTI={}", c.jti)]},
        },
        "audiences": matched,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_review() {
        let issuer = TokenIssuer::generate().unwrap();
        let (token, exp) = issuer
            .issue("ns", "sa", "uid-1", vec!["vault".into()], 600)
            .unwrap();
        assert!(exp > chrono::Utc::now().timestamp());
        let claims = issuer.verify(&token).unwrap();
        assert_eq!(claims.sub, "system:serviceaccount:ns:sa");
        let ok = review_status(Some(&claims), &["vault".to_string()], true);
        assert_eq!(ok["authenticated"], true);
        assert_eq!(ok["user"]["username"], "system:serviceaccount:ns:sa");
        let wrong_aud = review_status(Some(&claims), &["other".to_string()], true);
        assert_eq!(wrong_aud["authenticated"], false);
        assert_eq!(
            review_status(Some(&claims), &[], false)["authenticated"],
            false
        );
        assert!(issuer.verify("not.a.token").is_none());
        let other = TokenIssuer::generate().unwrap();
        assert!(
            other.verify(&token).is_none(),
            "a token from another key is rejected"
        );
    }
}

//! The account's write regions. With multi-region writes, two regions can each accept an append
//! at one expected version and conflict resolution keeps one of them afterwards: rule 2 would not
//! hold, so a store refuses such an account.

use hmac::{Hmac, Mac};
use sekiban_core::{Result, StoreError};

/// The account properties that matter here.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountProperties {
    #[serde(default)]
    enable_multiple_write_locations: bool,
    #[serde(default)]
    writable_locations: Vec<serde_json::Value>,
}

/// Refuses account properties (the JSON the account's root returns) with multi-region writes.
pub(crate) fn check_properties(endpoint: &str, body: &str) -> Result<()> {
    let p: AccountProperties = serde_json::from_str(body).map_err(|e| {
        StoreError::backend(format!("read the account properties of {endpoint}"), e)
    })?;
    if p.enable_multiple_write_locations && p.writable_locations.len() > 1 {
        return Err(StoreError::invalid(format!(
            "the account at {endpoint} accepts writes in {} regions (multi-region writes): two regions could each accept an append at one expected version; sekiban needs an account with single-region writes",
            p.writable_locations.len()
        )));
    }
    Ok(())
}

/// The master-key authorization of a `GET` of the account's root at `date` (RFC 7231).
pub(crate) fn root_authorization(key: &str, date: &str) -> Result<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(key)
        .map_err(|e| StoreError::invalid(format!("the account key is not base64 ({e})")))?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key)
        .map_err(|e| StoreError::invalid(format!("the account key: {e}")))?;
    mac.update(format!("get\n\n\n{}\n\n", date.to_ascii_lowercase()).as_bytes());
    let token = format!(
        "type=master&ver=1.0&sig={}",
        b64.encode(mac.finalize().into_bytes())
    );
    Ok(url::form_urlencoded::byte_serialize(token.as_bytes()).collect())
}

/// How the store authenticates to the account.
#[derive(Clone)]
pub(crate) enum Auth {
    /// The account key (base64).
    Key(String),
    /// An Entra ID credential.
    Entra(std::sync::Arc<dyn azure_core::credentials::TokenCredential>),
}

/// The scope of Cosmos DB's data plane.
const SCOPE: &str = "https://cosmos.azure.com/.default";

impl Auth {
    /// The `authorization` header of a `GET` of the account's root at `date`.
    async fn root(&self, endpoint: &str, date: &str) -> Result<String> {
        match self {
            Auth::Key(key) => root_authorization(key, date),
            Auth::Entra(credential) => {
                let token = credential.get_token(&[SCOPE], None).await.map_err(|e| {
                    StoreError::backend(format!("get an Entra ID token for {endpoint}"), e)
                })?;
                let value = format!("type=aad&ver=1.0&sig={}", token.token.secret());
                Ok(url::form_urlencoded::byte_serialize(value.as_bytes()).collect())
            }
        }
    }
}

/// Reads the account's properties (one signed `GET`) and refuses multi-region writes.
pub(crate) async fn check_write_regions(endpoint: &str, auth: &Auth) -> Result<()> {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let unreachable =
        |e: reqwest::Error| StoreError::unavailable(format!("reach the account at {endpoint}"), e);
    let client = reqwest::Client::builder().build().map_err(unreachable)?;
    let response = client
        .get(endpoint)
        .header("x-ms-date", &date)
        .header("x-ms-version", "2020-07-15")
        .header("authorization", auth.root(endpoint, &date).await?)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let body = response.text().await.map_err(unreachable)?;
    if status.as_u16() == 401 || status.as_u16() == 403 {
        return Err(StoreError::invalid(format!(
            "the account at {endpoint} refused the credential ({status}): check the key in SEKIBAN_COSMOS_KEY (or key_env=), or the identity's data-plane role"
        )));
    }
    if !status.is_success() {
        return Err(StoreError::unavailable(
            format!("read the account properties of {endpoint}"),
            format!("status {status}: {body}"),
        ));
    }
    check_properties(endpoint, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_region_writes_are_refused() {
        let one = r#"{"id":"a","writableLocations":[{"name":"East US"}],"readableLocations":[{"name":"East US"},{"name":"West US"}],"enableMultipleWriteLocations":false}"#;
        assert!(check_properties("https://a/", one).is_ok());
        let many = r#"{"writableLocations":[{"name":"East US"},{"name":"West US"}],"enableMultipleWriteLocations":true}"#;
        let e = check_properties("https://a/", many).unwrap_err();
        assert!(e.to_string().contains("multi-region writes"), "{e}");
        // Enabled, but one region writes: nothing can conflict.
        let enabled_one =
            r#"{"writableLocations":[{"name":"East US"}],"enableMultipleWriteLocations":true}"#;
        assert!(check_properties("https://a/", enabled_one).is_ok());
    }

    #[test]
    fn the_root_is_signed_as_the_rest_api_says() {
        // HMAC-SHA256 of "get\n\n\nmon, 01 jan 1900 01:00:00 gmt\n\n" under the key "key",
        // computed apart (Python: hmac.new(b"key", msg, hashlib.sha256)).
        let auth = root_authorization("a2V5", "Mon, 01 Jan 1900 01:00:00 GMT").unwrap();
        assert_eq!(
            auth,
            "type%3Dmaster%26ver%3D1.0%26sig%3Dgb2eg2rQYtmqXoqc36Q0t0akzqbumHfKN7db0jgSjPQ%3D"
        );
        assert!(root_authorization("not base64!", "x").is_err());
    }
}

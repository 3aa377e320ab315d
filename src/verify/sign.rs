//! The sender's side of every scheme, for `hookflow send` and round-trip
//! tests: given a verifier config, produce the headers (and, rarely, the URL)
//! a genuine sender would use. Signing always uses the FIRST secret of a list,
//! as a sender mid-rotation signs with its newest secret.

use std::fmt;

use super::{BuildError, VerifierConfig};

/// What to add to a request so the configured verifier accepts it.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    /// Header name and value pairs, in the provider's usual casing.
    pub headers: Vec<(String, String)>,
    /// The URL to request. It is the `url` given to [`sign`] except for two
    /// schemes that sign through the URL: Twilio with a JSON body adds
    /// `bodySHA256=<hex>`, and a query `token` adds its parameter.
    pub url: String,
}

/// Header values and the query may hold tokens: show only their shape.
impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        let url = match self.url.split_once('?') {
            Some((base, _)) => format!("{base}?***"),
            None => self.url.clone(),
        };
        f.debug_struct("Signed")
            .field("headers", &names)
            .field("url", &url)
            .finish()
    }
}

/// Why a request could not be signed: only an unusable config, today.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// Signs `body` as the sender `config` describes would at unix time `now`,
/// for a request to `url` (which only Twilio signs).
pub fn sign(
    config: &VerifierConfig,
    body: &[u8],
    now: i64,
    url: &str,
) -> Result<Signed, SignError> {
    let mut url = url.to_owned();
    let headers = super::build(config)?.sign(body, now, &mut url);
    Ok(Signed { headers, url })
}

/// Appends an already-encoded `name=value` pair to a URL's query.
pub(crate) fn append_query(url: &mut String, pair: &str) {
    if !url.contains('?') {
        url.push('?');
    } else if !url.ends_with('?') && !url.ends_with('&') {
        url.push('&');
    }
    url.push_str(pair);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::Secret;

    #[test]
    fn signed_debug_hides_header_values_and_query() {
        let config = VerifierConfig::Gitlab(crate::verify::gitlab::Config {
            tokens: vec![Secret::new("glpat-secret")],
        });
        let signed = sign(&config, b"{}", 0, "https://x/h?k=v").unwrap();
        let shown = format!("{signed:?}");
        assert!(
            !shown.contains("glpat-secret") && !shown.contains("k=v"),
            "{shown}"
        );
    }

    #[test]
    fn append_query_picks_the_right_separator() {
        for (start, expected) in [
            ("u", "u?a=1"),
            ("u?", "u?a=1"),
            ("u?b=2", "u?b=2&a=1"),
            ("u?b=2&", "u?b=2&a=1"),
        ] {
            let mut url = start.to_owned();
            append_query(&mut url, "a=1");
            assert_eq!(url, expected);
        }
    }

    #[test]
    fn sign_reports_an_unusable_config() {
        let config = VerifierConfig::Standard(crate::verify::standard::Config {
            secrets: vec![Secret::new("whsec_%%%")],
            tolerance: std::time::Duration::from_secs(300),
        });
        assert!(matches!(
            sign(&config, b"", 0, ""),
            Err(SignError::Build(_))
        ));
    }
}

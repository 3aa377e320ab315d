//! Test-only request builder shared by the schemes' unit tests.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{Incoming, Signed, VerifierConfig, VerifyError, build, sign};

/// An owned request that lends out an [`Incoming`].
pub(crate) struct Req {
    pub(crate) method: &'static str,
    pub(crate) headers: HeaderMap,
    pub(crate) query: Option<String>,
    pub(crate) body: Vec<u8>,
    pub(crate) now: i64,
}

impl Req {
    pub(crate) fn post(body: &[u8], now: i64) -> Self {
        Req {
            method: "POST",
            headers: HeaderMap::new(),
            query: None,
            body: body.to_vec(),
            now,
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes(value.as_bytes()).expect("test header value"),
        );
        self
    }

    pub(crate) fn signed(mut self, signed: &Signed) -> Self {
        for (name, value) in &signed.headers {
            self = self.header(name, value);
        }
        self
    }

    pub(crate) fn query(mut self, query: &str) -> Self {
        self.query = Some(query.to_owned());
        self
    }

    pub(crate) fn incoming(&self) -> Incoming<'_> {
        Incoming {
            method: self.method,
            headers: &self.headers,
            query: self.query.as_deref(),
            body: &self.body,
            now: self.now,
        }
    }

    pub(crate) fn verify(&self, config: &VerifierConfig) -> Result<(), VerifyError> {
        build(config)
            .expect("test config builds")
            .verify(&self.incoming())
    }
}

/// Signs `body` as a sender would and verifies it at the same instant, with
/// the query a receiver would see for the signed URL.
pub(crate) fn round_trip(
    config: &VerifierConfig,
    body: &[u8],
    url: &str,
) -> Result<(), VerifyError> {
    let now = 1_751_371_200;
    let signed = sign(config, body, now, url).expect("test config signs");
    let mut req = Req::post(body, now).signed(&signed);
    if let Some((_, query)) = signed.url.split_once('?') {
        req = req.query(query);
    }
    req.verify(config)
}
